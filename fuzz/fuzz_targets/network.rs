//! The whole path from a file's bytes to a network and its maps: format detection,
//! every reader, architecture inference, building the network (Burn's flex backend,
//! no libtorch under the sanitizer), one forward pass and a Grad-CAM on a small image.
//! Any outcome but a panic, a hang or exhausted memory is fine.
#![no_main]

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use camwatch::cam::{self, CamRequest, Layer, Method, Target, Timings};
use camwatch::device::{DeviceChoice, select};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(device) = select(DeviceChoice::Flex) else {
        return;
    };
    let Ok(loaded) = camwatch::loader::from_bytes(Path::new("fuzz"), data, &device.device, &Default::default()) else {
        return;
    };
    // Keep a fuzz iteration short: only small networks are run.
    if loaded.config.parameter_count() > 2_000_000 {
        return;
    }
    let input = Tensor::<4>::from_data(TensorData::new(vec![0.5f32; 3 * 32 * 32], [1, 3, 32, 32]), &device.device);
    let request = CamRequest {
        methods: vec![Method::GradCam],
        layer: Layer::LAST,
        target: Target::Predicted,
        batch: 1,
        cancel: Default::default(),
    };
    let _ = cam::compute(&loaded.model, input, &[None], &request, &mut Timings::default());
});
