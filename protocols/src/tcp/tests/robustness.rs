//! RFC 5961 challenge ACKs, ACK validation, PAWS, urgent data, window scale limits.

use super::*;
