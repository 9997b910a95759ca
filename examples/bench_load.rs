//! Load time of a checkpoint in a warm process, as a monitor sees it: the median of N
//! loads (file → network on the libtorch CPU device) after one warm-up load.
//!
//! Usage: cargo run --release --example bench_load -- FILE [N]
//!
//! Prints the median in ms; on stderr, the same loads split into reading and parsing
//! the file and building the network from its tensors (what keeping one network and
//! copying each checkpoint into it could save at most), and the last step of each way
//! timed alone: the network's values put into new tensors (building anew) or copied
//! into the tensors of a network kept from before, in place (a resident network).

use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use camwatch::checkpoint;
use camwatch::device::{DeviceChoice, select};
use camwatch::loader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().ok_or("usage: bench_load FILE [N]")?);
    let n: usize = args.next().map_or(Ok(5), |n| n.parse())?;
    // As the monitor runs: freed memory reused, not handed back and faulted in again.
    camwatch::device::reuse_freed_memory();
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
            let loaded = loader::from_weights(&path, format, weights, &device, &Default::default())
                .expect("builds");
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

    let mut model = loader::load(&path, &device)?.model;
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    let (mut fresh, mut in_place) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let mut rewrite = Rewrite::new(&values.0, false, &device);
        let start = Instant::now();
        let built = model.clone().map(&mut rewrite);
        fresh.push(start.elapsed().as_secs_f64() * 1e3);
        drop(built);
        let mut rewrite = Rewrite::new(&values.0, true, &device);
        let start = Instant::now();
        model = model.map(&mut rewrite);
        in_place.push(start.elapsed().as_secs_f64() * 1e3);
    }
    fresh.sort_by(f64::total_cmp);
    in_place.sort_by(f64::total_cmp);
    eprintln!(
        "of which the values into new tensors {:.1} ms, into a kept network's {:.1} ms (medians)",
        fresh[n / 2],
        in_place[n / 2]
    );
    Ok(())
}

/// Every parameter's values, in the order a module visits them.
struct Values(Vec<TensorData>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().to_data());
    }
}

/// Puts `values` into a network's parameters: new tensors, or copied into the ones it has.
struct Rewrite<'a> {
    values: std::slice::Iter<'a, TensorData>,
    in_place: bool,
    device: &'a Device,
}

impl<'a> Rewrite<'a> {
    fn new(values: &'a [TensorData], in_place: bool, device: &'a Device) -> Self {
        Rewrite {
            values: values.iter(),
            in_place,
            device,
        }
    }
}

impl ModuleMapper for Rewrite<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let values = self.values.next().expect("one value per parameter").clone();
        let new = Tensor::<D>::from_data(values, self.device);
        if !self.in_place {
            return Param::from_tensor(new);
        }
        param.map(|kept| {
            let ranges = kept.dims().map(|d| 0..d);
            kept.slice_assign(ranges, new)
        })
    }
}
