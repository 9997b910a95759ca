//! Time per checkpoint in a warm process, as the monitor sees it and as pytorch-grad-cam
//! is measured: the median of N runs of open file → every map (after one untimed run).
//!
//! Usage: bench_cam CHECKPOINT SAMPLES METHODS LAYER [N] [PRECISION] [INPUT_SIZE]
//!        (METHODS comma-separated, LAYER last or a layer's name, PRECISION fp32 or bf16,
//!        INPUT_SIZE 224 by default)

use std::path::PathBuf;
use std::time::Instant;

use camwatch::cam::{CamRequest, Method, Normalize, SampleSet, Target};
use camwatch::device::{DeviceChoice, select};
use camwatch::precision::{self, Precision};
use camwatch::{loader, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [checkpoint, samples, methods, layer, rest @ ..] = args.as_slice() else {
        return Err("usage: bench_cam CHECKPOINT SAMPLES METHODS LAYER [N]".into());
    };
    let n: usize = rest.first().map_or(Ok(5), |n| n.parse())?;
    let precision = match rest.get(1).map(String::as_str) {
        None | Some("fp32") => Precision::Fp32,
        Some("bf16") => Precision::Bf16,
        Some(other) => return Err(format!("{other:?}: expected fp32 or bf16").into()),
    };
    let input_size: usize = rest.get(2).map_or(Ok(224), |n| n.parse())?;
    // As the monitor runs: freed memory reused within a checkpoint, handed back after.
    camwatch::device::reuse_freed_memory();
    let selected = select(DeviceChoice::Cpu)?;
    let device = selected.device.clone();
    let request = CamRequest {
        methods: Method::parse_list(methods)?,
        layer: layer.parse()?,
        target: Target::Predicted,
        batch: 16,
        cancel: Default::default(),
    };
    let run = || -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let set = SampleSet::load(&PathBuf::from(samples))?;
        let loaded = loader::load(&PathBuf::from(checkpoint), &device)?;
        let model = precision::cast(loaded.model, precision, request.layer);
        render::compute_all(
            &model,
            &set,
            &request,
            Normalize::Imagenet,
            input_size,
            &device,
        )?;
        camwatch::device::release_cached_memory(&selected);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    run()?;
    let mut times = (0..n).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    times.sort_by(f64::total_cmp);
    println!("{:.1}", times[n / 2]);
    Ok(())
}
