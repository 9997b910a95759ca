//! Load time of a checkpoint in a warm process, as a monitor sees it: the median of N
//! loads (file → network on the libtorch CPU device) after one warm-up load.
//!
//! Usage: cargo run --release --example bench_load -- FILE [N]

use std::time::Instant;

use camwatch::device::{DeviceChoice, select};
use camwatch::loader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().ok_or("usage: bench_load FILE [N]")?);
    let n: usize = args.next().map_or(Ok(5), |n| n.parse())?;
    let device = select(DeviceChoice::Cpu)?.device;
    loader::load(&path, &device)?;
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let loaded = loader::load(&path, &device).expect("loads");
            drop(loaded);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.1}", times[n / 2]);
    Ok(())
}
