//! One TCP connection (to be written).
