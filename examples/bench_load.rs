//! Load time of a checkpoint in a warm process, as a monitor sees it: the median of N
//! loads (file → network on the libtorch CPU device) after one warm-up load.
//!
//! Usage: cargo run --release --example bench_load -- FILE [N]
//!
//! Prints the median in ms; on stderr, the same loads split into reading and parsing
//! the file and building the network from its tensors (what keeping one network and
//! copying each checkpoint into it could save at most).

use std::time::Instant;

use camwatch::checkpoint;
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

    let (mut parse, mut build): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|_| {
            let start = Instant::now();
            let (format, weights) = checkpoint::with_file(&path, checkpoint::parse)
                .expect("reads")
                .expect("parses");
            let parsed = start.elapsed().as_secs_f64() * 1e3;
            let start = Instant::now();
            let loaded = loader::from_weights(&path, format, weights, &device).expect("builds");
            drop(loaded);
            (parsed, start.elapsed().as_secs_f64() * 1e3)
        })
        .unzip();
    parse.sort_by(f64::total_cmp);
    build.sort_by(f64::total_cmp);
    eprintln!(
        "read + parse {:.1} ms, network from its tensors {:.1} ms (medians)",
        parse[n / 2],
        build[n / 2]
    );
    Ok(())
}
