//! tapir engine (to be written).

pub mod pool;
pub mod sys;
