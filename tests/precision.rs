//! bf16 forward passes against fp32 where `--precision auto` uses bf16 (the last stage,
//! methods other than ScoreCAM and EigenCAM): the same maps (Pearson ≥ 0.99 per image
//! and method) and the same predicted classes, on the reference networks and the demo.
#![cfg(feature = "tch")]

mod common;

use camwatch::cam::{
    CamRequest, Layer, Method, Normalize, SampleMaps, SampleSet, Target, measures,
};
use camwatch::device::{DeviceChoice, select};
use camwatch::precision::{self, Precision, PrecisionChoice};
use camwatch::{loader, render};
use common::fixtures;

const MIN_CORRELATION: f32 = 0.99;

/// The methods the method table marks bf16-exact: `auto` computes them in bf16 at the
/// last stage, so this test checks the table's claim.
fn bf16_exact() -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|m| m.info().bf16_exact)
        .collect()
}

fn run(
    checkpoint: &std::path::Path,
    samples: &std::path::Path,
    precision: Precision,
) -> Vec<SampleMaps> {
    let layer = Layer::LAST;
    let device = select(DeviceChoice::Cpu).expect("libtorch CPU").device;
    let loaded = loader::load(checkpoint, &device).unwrap();
    let model = precision::cast(loaded.model, precision, layer);
    let set = SampleSet::load(samples).unwrap();
    let methods = bf16_exact();
    let request = CamRequest {
        methods,
        layer,
        target: Target::Predicted,
        batch: 16,
        cancel: Default::default(),
    };
    render::compute_all(&model, &set, &request, Normalize::Imagenet, 224, &device)
        .unwrap()
        .0
}

/// Same class predicted on at least 99 % of images (all of them, with so few), and the
/// maps of each method correlated; returns the lowest correlation.
fn compare(name: &str, fp32: &[SampleMaps], bf16: &[SampleMaps]) {
    let same = fp32
        .iter()
        .zip(bf16)
        .filter(|(a, b)| a.predicted == b.predicted)
        .count();
    assert!(
        same * 100 >= fp32.len() * 99,
        "{name}: {same} of {} predictions agree",
        fp32.len()
    );
    let mut lowest = f32::INFINITY;
    for (i, (a, b)) in fp32.iter().zip(bf16).enumerate() {
        if a.predicted != b.predicted {
            continue;
        }
        for ((method, full), (_, half)) in a.maps.iter().zip(&b.maps) {
            let r = measures::pearson(&full.values, &half.values);
            // A map that is zero everywhere in both (ReLU of an all-negative one).
            let flat =
                full.values.iter().all(|v| *v == 0.0) && half.values.iter().all(|v| *v == 0.0);
            if !flat {
                assert!(r >= MIN_CORRELATION, "{name}: image {i}, {method}: r = {r}");
                lowest = lowest.min(r);
            }
        }
    }
    eprintln!("{name}: lowest correlation {lowest:.5}");
}

#[test]
fn bf16_maps_match_fp32_on_the_reference_networks_and_the_demo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (
            fixtures().join("timm_r50.pth"),
            fixtures().join("cam_samples"),
        ),
        (
            fixtures().join("paddle_r50.p4.pdparams"),
            fixtures().join("cam_samples"),
        ),
        (
            root.join("checkpoints/epoch_4.pdparams"),
            root.join("samples"),
        ),
        (
            root.join("checkpoints/epoch_16.pdparams"),
            root.join("samples"),
        ),
    ];
    for (checkpoint, samples) in cases {
        let fp32 = run(&checkpoint, &samples, Precision::Fp32);
        let bf16 = run(&checkpoint, &samples, Precision::Bf16);
        compare(&checkpoint.display().to_string(), &fp32, &bf16);
    }
}

/// `auto`: bf16 only where the test above holds, and where the hardware is fast.
#[test]
fn auto_uses_bf16_only_where_it_gives_fp32_maps() {
    let mut cuda = select(DeviceChoice::Cpu).unwrap();
    cuda.chosen = DeviceChoice::Cuda(0);
    assert!(precision::bf16_eligible(&cuda, &bf16_exact(), Layer::LAST));
    for (methods, layer) in [
        (&[Method::GradCam][..], Layer::Tap("stage3")),
        (&[Method::GradCam, Method::ScoreCam], Layer::LAST),
        (&[Method::EigenCam], Layer::LAST),
    ] {
        assert!(
            !precision::bf16_eligible(&cuda, methods, layer),
            "{methods:?} {layer}"
        );
    }
    let flex_like = select(DeviceChoice::Cpu).map(|mut d| {
        d.chosen = DeviceChoice::Flex;
        d
    });
    let flex_like = flex_like.unwrap();
    for choice in [PrecisionChoice::Auto, PrecisionChoice::Bf16] {
        let resolved = choice.resolve(&flex_like, &[Method::GradCam], Layer::LAST, 2, 64);
        assert_eq!(
            resolved,
            Precision::Fp32,
            "the pure-Rust backend computes in fp32"
        );
    }
    let cpu = select(DeviceChoice::Cpu).unwrap();
    assert_eq!(
        precision::bf16_eligible(&cpu, &[Method::GradCam], Layer::LAST),
        precision::cpu_has_fast_bf16()
    );
    assert_eq!(
        PrecisionChoice::Bf16.resolve(&cpu, &[Method::ScoreCam], Layer::Tap("stage1"), 2, 64),
        Precision::Bf16
    );
}

/// `auto` never picks the slower precision: where bf16 is eligible, the choice follows
/// what was measured on this machine, and the measurement is made once.
#[test]
fn auto_follows_the_measurement() {
    let cpu = select(DeviceChoice::Cpu).unwrap();
    let (images, size) = (2, 96);
    let measured = precision::measured(&cpu, images, size);
    assert!(
        measured.fp32_ms > 0.0 && measured.bf16_ms > 0.0,
        "{measured:?}"
    );
    let expected = if precision::cpu_has_fast_bf16() && measured.bf16_faster() {
        Precision::Bf16
    } else {
        Precision::Fp32
    };
    let resolved =
        PrecisionChoice::Auto.resolve(&cpu, &[Method::GradCam], Layer::LAST, images, size);
    assert_eq!(resolved, expected, "{measured:?}");
    // Asked again: the same figures, not a second measurement.
    assert_eq!(precision::measured(&cpu, images, size), measured);
}
