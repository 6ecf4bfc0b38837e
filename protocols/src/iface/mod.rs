//! A whole node (to be written).
