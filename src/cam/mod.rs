//! Class activation maps: preprocessing, the methods, colormaps, overlays and measures.

pub mod caption;
pub mod colormap;
mod colormap_tables;
mod eigen;
pub mod engine;
pub mod image_ops;
pub mod measures;
pub mod metrics;
pub mod npy;
pub mod options;
pub mod road;
pub mod samples;
pub mod trust;

pub use colormap::Colormap;
pub use engine::{CamError, CamRequest, Map, SampleMaps, Timings, compute};
pub use options::{Layer, Method, Normalize, Target};
pub use samples::{Sample, SampleSet};
