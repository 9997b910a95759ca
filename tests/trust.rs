//! Whether the maps can be trusted (src/cam/metrics.rs, src/cam/trust.rs): the
//! faithfulness metrics against pytorch-grad-cam and a NumPy implementation of their
//! definitions (tools/make_metric_refs.py), and the sanity checks on an untrained
//! network and on the trained demo.

mod common;

use std::path::Path;

use burn::tensor::Device;
use burn::tensor::activation::softmax;
use camwatch::cam::metrics::{self, Metric, MetricSettings};
use camwatch::cam::trust::{self, Scorer};
use camwatch::cam::{CamRequest, Layer, Method, Normalize, SampleSet, Target, image_ops};
use camwatch::device::{DeviceChoice, select};
use camwatch::loader;
use camwatch::render;
use common::{fixtures, reference, to_tensor, values};

fn device() -> Device {
    select(DeviceChoice::Cpu).expect("libtorch CPU").device
}

fn request(methods: &[Method]) -> CamRequest {
    CamRequest {
        methods: methods.to_vec(),
        layer: Layer::LAST,
        target: Target::Predicted,
        batch: 18,
        cancel: Default::default(),
    }
}

#[test]
fn faithfulness_matches_pytorch_grad_cam_and_the_definition() {
    let refs = reference("metrics.ref.safetensors");
    let device = device();
    let model = loader::load(&fixtures().join("metrics_r50.pth"), &device)
        .unwrap()
        .model;
    let input = &refs["input"];
    let [batch, channels, height, width] = [0, 1, 2, 3].map(|i| input.shape[i]);
    let (_, probs) = values(softmax(
        model.forward(to_tensor::<4>(input, &device)).logits,
        1,
    ));
    let classes = probs.len() / batch;
    for (ours, theirs) in probs.iter().zip(&refs["probs"].values) {
        assert!(
            (ours - theirs).abs() < 1e-5,
            "probabilities {ours} vs {theirs}"
        );
    }
    let request = request(&[]);
    let scorer = Scorer {
        model: &model,
        request: &request,
        dims: [channels, height, width],
        device: device.clone(),
    };
    // Noiseless imputation, as the references were made.
    let settings = MetricSettings {
        road_noise: 0.0,
        ..Default::default()
    };
    let per_image = channels * height * width;
    let plane = height * width;
    for method in ["gradcam", "hirescam"] {
        let cams = &refs[&format!("cam.{method}")];
        for b in 0..batch {
            let target = refs["target"].values[b] as usize;
            let image = metrics::Image {
                input: &input.values[b * per_image..(b + 1) * per_image],
                height,
                width,
                shown: &cams.values[b * plane..(b + 1) * plane],
                probability: probs[b * classes + target],
                seed: 0,
            };
            let figures = metrics::evaluate(&image, &settings, &mut |inputs| {
                scorer.probabilities(inputs, target)
            })
            .unwrap();
            for (metric, reference, tolerance) in [
                (Metric::Confidence, "confidence", 1e-4),
                (Metric::Deletion, "deletion", 1e-4),
                (Metric::Insertion, "insertion", 1e-4),
                (Metric::Road, "road", 1e-3),
            ] {
                let ours = figures.get(metric).unwrap();
                let theirs = refs[&format!("{reference}.{method}")].values[b];
                eprintln!("{method} image {b} {metric}: {ours:.6} vs {theirs:.6}");
                assert!(
                    (ours - theirs).abs() <= tolerance,
                    "{method} image {b} {metric}: {ours} vs {theirs}"
                );
            }
        }
    }
}

/// The sanity figures of every sample of `samples` for `methods`.
fn sanity(
    checkpoint: &Path,
    samples: &Path,
    methods: &[Method],
) -> Vec<std::collections::BTreeMap<Method, trust::Sanity>> {
    let device = device();
    let loaded = loader::load(checkpoint, &device).unwrap();
    let set = SampleSet::load(samples).unwrap();
    let request = request(methods);
    let (results, _) = render::compute_all(
        &loaded.model,
        &set,
        &request,
        Normalize::Imagenet,
        224,
        &device,
    )
    .unwrap();
    let images: Vec<_> = set.samples.iter().map(|s| &s.image).collect();
    let input = image_ops::to_input(&images, 224, Normalize::Imagenet, &device);
    let random = loaded.config.init_seeded(&device, trust::RANDOM_SEED);
    trust::sanity(&loaded.model, Some(&random), &input, &results, &request).unwrap()
}

#[test]
fn an_untrained_network_is_flagged_and_the_trained_demo_is_not() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The timm fixture is a res2net50d with random weights: its Grad-CAM maps look like
    // another untrained network's.
    for figures in sanity(
        &fixtures().join("timm_r50.pth"),
        &demo.join("samples"),
        &[Method::GradCam],
    ) {
        let s = figures[&Method::GradCam];
        assert!(
            s.flags().contains(&"like an untrained network's"),
            "random weights not flagged: {s:?}"
        );
    }
    // The demo's last epoch: Grad-CAM depends on the class and on what was learnt;
    // EigenCAM has no class, which the check says.
    let last = demo.join(format!(
        "checkpoints/epoch_{}.pdparams",
        std::fs::read_dir(demo.join("checkpoints")).unwrap().count()
    ));
    for figures in sanity(
        &last,
        &demo.join("samples"),
        &[Method::GradCam, Method::EigenCam],
    ) {
        let gradcam = figures[&Method::GradCam];
        assert!(
            gradcam.flags().is_empty(),
            "trained demo flagged: {gradcam:?}"
        );
        assert!(gradcam.class_corr.unwrap() < 0.5, "{gradcam:?}");
        let eigencam = figures[&Method::EigenCam];
        assert_eq!(eigencam.flags(), ["ignores the class"], "{eigencam:?}");
    }
}
