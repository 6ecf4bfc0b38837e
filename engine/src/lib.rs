//! tapir engine (to be written).
