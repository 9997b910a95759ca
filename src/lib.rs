//! camwatch: watch where a convolutional network looks while it trains.
//!
//! The core knows nothing of the terminal: [`checkpoint`] reads weight files, [`model`]
//! is the ResNet family in Burn, [`device`] picks the backend, [`loader`] ties them
//! together, [`cam`] computes the maps and [`monitor`] follows a run. [`tui`] is the
//! terminal layer over them; nothing else imports ratatui or crossterm.

pub mod cam;
pub mod checkpoint;
pub mod compare;
pub mod device;
pub mod figures;
pub mod isolate;
pub mod loader;
pub mod model;
pub mod monitor;
pub mod paths;
pub mod precision;
pub mod render;
pub mod report;
pub mod results;
pub mod rng;
pub mod runs;
pub mod scan;
pub mod store;
pub mod tensorboard;
pub mod tui;
pub mod untrusted;
