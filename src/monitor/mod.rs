//! Following a training run: checkpoint discovery and bookkeeping.

pub mod epoch;
