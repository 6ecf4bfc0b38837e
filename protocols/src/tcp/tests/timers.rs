//! Keep-alive, user timeout and FIN-WAIT-2 timeout.

use super::*;
