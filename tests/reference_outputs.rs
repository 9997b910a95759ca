//! Every fixture checkpoint, loaded by camwatch, gives the logits and the four stage
//! outputs that PaddlePaddle or timm computed for the same input (tools/make_fixtures.py).

mod common;

use burn::tensor::Device;
use camwatch::loader;
use camwatch::model::{Variant, resnet};
use common::{cpu, fixtures, manifest, reference, relative_error, to_tensor, values};

/// Float32 kernels differ in summation order between frameworks; 1e-4 of the
/// reference's largest magnitude is the bound the project promises for logits.
const TOLERANCE: f32 = 1e-4;

fn check_all(device: &Device, filter: impl Fn(&str) -> bool) {
    let mut checked = 0;
    for fixture in manifest().iter().filter(|f| filter(&f.file)) {
        let path = fixtures().join(&fixture.file);
        let loaded = loader::load(&path, device).unwrap_or_else(|e| panic!("{e}"));
        let config = &loaded
            .config
            .as_any()
            .downcast_ref::<resnet::Member>()
            .expect("a ResNet-family member")
            .config;
        let arch = &fixture.arch;
        let variant = match arch.variant.as_str() {
            "paddle" => Variant::Paddle,
            _ => Variant::Timm,
        };
        assert_eq!(
            (config.variant, &config.depths, config.width, config.scales),
            (variant, &arch.depths, arch.width, arch.scales),
            "{}: inferred architecture",
            fixture.file
        );
        assert_eq!(
            (config.num_classes, config.stem_width, config.base_channels),
            (arch.classes, arch.stem_width, arch.base_channels),
            "{}: inferred architecture",
            fixture.file
        );

        let refs = reference(&fixture.reference);
        let (logits, stages) = loaded.model.forward_taps(to_tensor(&refs["input"], device));
        let tolerance = fixture.tolerance.unwrap_or(TOLERANCE);
        let mut outputs = vec![("logits".to_string(), values(logits))];
        for (i, stage) in stages.into_iter().enumerate() {
            outputs.push((format!("stage{}", i + 1), values(stage)));
        }
        for (name, (shape, actual)) in outputs {
            let expected = &refs[&name];
            assert_eq!(shape, expected.shape, "{}: {name} shape", fixture.file);
            let error = relative_error(&actual, &expected.values);
            eprintln!("{}: {name} relative error {error:.2e}", fixture.file);
            assert!(
                error <= tolerance,
                "{}: {name} differs from the reference by {error:e} (tolerance {tolerance:e})",
                fixture.file
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no fixture matched");
}

#[test]
fn paddle_full_size_res2net50_vd_26w_4s_protocols_2_and_4() {
    check_all(&cpu(), |f| f.starts_with("paddle_r50"));
}

#[test]
fn paddle_small_odd_input_split_arrays_and_depth_101_naming() {
    check_all(&cpu(), |f| {
        f.starts_with("paddle_small") || f.starts_with("paddle_d101")
    });
}

#[test]
fn timm_full_size_res2net50d_pth_and_safetensors() {
    check_all(&cpu(), |f| f.starts_with("timm_r50"));
}

#[test]
fn timm_custom_depth_in_trainer_wrappers_and_half_precision() {
    check_all(&cpu(), |f| {
        f.starts_with("timm_small") || f.ends_with(".ckpt")
    });
}

#[cfg(feature = "flex")]
#[test]
fn flex_backend_matches_too() {
    let device = camwatch::device::select(camwatch::device::DeviceChoice::Flex)
        .expect("flex")
        .device;
    check_all(&device, |f| {
        f == "paddle_small.p4.pdparams" || f == "timm_small.pth"
    });
}

/// The fixtures exercise the two computations in which the variants differ: the same
/// timm weights run the PaddleClas way give clearly different outputs.
#[test]
fn variants_are_not_interchangeable() {
    use camwatch::checkpoint;
    use camwatch::model::resnet::{ResNet, infer};

    let device = cpu();
    let refs = reference("timm_small.ref.safetensors");
    let (_, weights) = checkpoint::read(&fixtures().join("timm_small.pth")).unwrap();
    let (mut config, naming) = infer(&weights).unwrap();
    config.variant = Variant::Paddle;
    let model = ResNet::from_weights(&config, &naming, weights, &device).unwrap();
    let output = model.forward(to_tensor(&refs["input"], &device));
    let (_, stage1) = values(output.stages.into_iter().next().unwrap());
    let error = relative_error(&stage1, &refs["stage1"].values);
    assert!(error > 1e-2, "stage 1 differs by only {error:e}");
}
