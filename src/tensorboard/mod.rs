//! camwatch's results as TensorBoard event files, so that TensorBoard's Images
//! dashboard shows attention moving across epochs beside the trainer's own curves (and
//! W&B and Aim, which import event files, show them too).
//!
//! ```text
//! CheckpointReport + stored maps ─▶ export (tags, PNGs) ─▶ log (TFRecords) ─▶ DIR/<run>/
//! ```
//!
//! The protobufs are written with `prost` (derived messages, no build step) and the
//! TFRecord framing's CRC-32C with `crc32c`: see docs/dashboards.md ("The writer") for
//! why not the old `tensorboard-rs`.

pub mod export;
pub mod live;
pub mod log;
mod proto;
mod record;

pub use export::{ExportError, ImageOptions, RunExport};
pub use live::{Live, LiveHandle};
pub use log::EventLog;
