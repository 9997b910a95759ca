//! Whether the maps can be trusted (src/cam/metrics.rs, src/cam/trust.rs): the
//! faithfulness metrics against pytorch-grad-cam and a NumPy implementation of their
//! definitions (tools/make_metric_refs.py), and the sanity checks on an untrained
//! network and on the trained demo.

mod common;

use std::path::Path;

use burn::tensor::activation::softmax;
use camwatch::cam::metrics::{self, Metric, MetricSettings};
use camwatch::cam::trust::{self, Scorer};
use camwatch::cam::{CamRequest, Layer, Method, Normalize, SampleSet, Target, image_ops};
use camwatch::loader;
use camwatch::render;
use common::{cpu, fixtures, reference, to_tensor, values};

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
    let device = cpu();
    let model = loader::load(&fixtures().join("metrics_r50.pth"), &device)
        .unwrap()
        .model;
    let input = &refs["input"];
    let [batch, channels, height, width] = [0, 1, 2, 3].map(|i| input.shape[i]);
    let (_, probs) = values(softmax(model.logits(to_tensor::<4>(input, &device)), 1));
    let classes = probs.len() / batch;
    for (ours, theirs) in probs.iter().zip(&refs["probs"].values) {
        assert!(
            (ours - theirs).abs() < 1e-5,
            "probabilities {ours} vs {theirs}"
        );
    }
    let request = request(&[]);
    let scorer = Scorer::new(&model, &request, [channels, height, width], device.clone());
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
    let device = cpu();
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
    let random = loaded
        .config
        .build(camwatch::model::Source::Seeded(trust::RANDOM_SEED), &device)
        .unwrap();
    let random = trust::Untrained::new(random);
    let keys: Vec<&str> = set.samples.iter().map(|s| s.digest.as_str()).collect();
    let sanity = || {
        trust::sanity(
            &loaded.model,
            Some(&random),
            &input,
            &results,
            &keys,
            &request,
        )
        .unwrap()
    };
    let figures = sanity();
    // The untrained network's maps, kept by image and class, give the same figures again.
    assert_eq!(figures, sanity(), "with the untrained network's kept maps");
    figures
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
        common::last_shipped_epoch("checkpoints")
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

fn camwatch(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("camwatch runs")
}

/// Three of the demo's samples, with their labels and boxes.
fn three_demo_samples(name: &str) -> std::path::PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let labels = std::fs::read_to_string(demo.join("labels.csv")).unwrap();
    let rows: Vec<&str> = labels.lines().take(4).collect();
    std::fs::write(dir.join("labels.csv"), rows.join("\n") + "\n").unwrap();
    for row in &rows[1..] {
        let file = row.split(',').next().unwrap();
        std::fs::copy(demo.join(file), dir.join(file)).unwrap();
    }
    for extra in ["classes.txt", "camwatch.toml"] {
        std::fs::copy(demo.join(extra), dir.join(extra)).unwrap();
    }
    dir
}

#[test]
fn render_writes_the_metrics_it_was_asked_for() {
    let samples = three_demo_samples("trust-render-samples");
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trust-render");
    let render = |metrics: &str| {
        let output = camwatch(&[
            "render",
            "--checkpoint",
            "checkpoints/epoch_16.pdparams",
            "--samples",
            samples.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--method",
            "gradcam,eigencam",
            "--metrics",
            metrics,
            "--metric-steps",
            "8",
        ]);
        assert!(output.status.success(), "{output:?}");
        let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let all = render("all");
    for sample in all["samples"].as_array().unwrap() {
        for method in ["gradcam", "eigencam"] {
            let m = &sample["metrics"][method];
            for key in [
                "confidence_change",
                "deletion_auc",
                "insertion_auc",
                "road_combined",
            ] {
                let v = m[key].as_f64().unwrap_or(f64::NAN);
                assert!(v.is_finite(), "{method} {key}: {m}");
            }
            assert!((0.0..=1.0).contains(&m["deletion_auc"].as_f64().unwrap()));
            let s = &sample["sanity"][method];
            assert!(s["class_corr"].is_f64() && s["random_corr"].is_f64(), "{s}");
        }
        // EigenCAM has no class: its map for the least likely class is the same.
        assert!(sample["sanity"]["eigencam"]["class_corr"].as_f64().unwrap() > 0.99);
    }
    let drop = &all["confidence"]["gradcam"];
    assert!(drop["average_drop"].is_f64() && drop["increase_in_confidence"].is_f64());
    assert!(all["timings_ms"]["metrics"].is_f64());

    let some = render("deletion");
    let sample = &some["samples"][0];
    assert!(sample["metrics"]["gradcam"]["deletion_auc"].is_f64());
    assert!(sample["metrics"]["gradcam"].get("road_combined").is_none());
    assert!(sample.get("sanity").is_none() && some.get("confidence").is_none());
    let none = render("none");
    assert!(none["samples"][0].get("metrics").is_none());
}

#[test]
fn check_passes_the_last_demo_epoch_and_fails_the_first() {
    let rules = [
        "--min-box-energy",
        "0.4",
        "--min-pointing",
        "0.6",
        "--min-accuracy",
        "0.75",
        "--max-sanity-flags",
        "0",
        "--device",
        "cpu",
    ];
    let check = |epoch: &str| {
        let mut args = vec!["check", "checkpoints", "--epoch", epoch];
        args.extend(rules);
        camwatch(&args)
    };
    let last = check("latest");
    let stdout = String::from_utf8_lossy(&last.stdout);
    assert!(last.status.success(), "{last:?}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("pass")).count(), 4);
    assert!(stdout.contains("epoch_16.pdparams"), "{stdout}");

    let first = check("1");
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success());
    assert!(stdout.contains("FAIL  mean box energy"), "{stdout}");
    assert!(stderr.contains("check(s) failed"), "{stderr}");

    let missing = check("99");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("no checkpoint of epoch 99"), "{stderr}");
    let no_rules = camwatch(&["check", "checkpoints"]);
    assert!(String::from_utf8_lossy(&no_rules.stderr).contains("no rules to check"));
}
