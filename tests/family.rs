//! Every supported member of the ResNet family, written by its own framework
//! (tools/make_family_fixtures.py: PaddleClas's model code, timm): the architecture
//! camwatch reads off the file, its logits and stage outputs against the framework's,
//! and its maps against pytorch-grad-cam (timm) or the original write-up's procedure
//! run in PaddlePaddle (PaddleClas).

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use camwatch::cam::{CamRequest, Layer, Method, Normalize, SampleMaps, SampleSet, Target};
use camwatch::loader::{self, LoadedModel};
use camwatch::render::{self, ArchSummary, display_map};
use common::{cpu, relative_error, to_tensor, values};

/// As for the Res2Net fixtures (tests/reference_outputs.rs): 1e-4 of the reference's
/// largest magnitude.
const TOLERANCE: f32 = 1e-4;
const MIN_CORRELATION: f32 = 0.999;
const SAMPLE_SIZE: u32 = 128;
const PLANE: usize = (SAMPLE_SIZE * SAMPLE_SIZE) as usize;

#[derive(serde::Deserialize)]
struct Member {
    file: String,
    reference: String,
    /// The architecture as `info --json` reports it.
    #[serde(flatten)]
    arch: serde_json::Map<String, serde_json::Value>,
}

fn family() -> PathBuf {
    common::fixture_set("family", "tools/make_family_fixtures.py")
}

fn members(framework: &str) -> Vec<Member> {
    let all: Vec<Member> = common::set_manifest(&family());
    all.into_iter()
        .filter(|m| m.arch["variant"] == framework)
        .collect()
}

fn reference(
    member: &Member,
) -> std::collections::BTreeMap<String, camwatch::checkpoint::WeightTensor> {
    common::read_tensors(&family().join(&member.reference))
}

fn load(member: &Member, device: &Device) -> LoadedModel {
    loader::load(&family().join(&member.file), device).unwrap_or_else(|e| panic!("{e}"))
}

/// The architecture read off the file is the one its name stands for, and the network
/// gives the framework's logits and stage outputs.
fn check_outputs(framework: &str, device: &Device) {
    let members = members(framework);
    assert!(!members.is_empty(), "no {framework} members");
    for member in &members {
        let loaded = load(member, device);
        let summary = serde_json::to_value(ArchSummary::of(&loaded.config)).unwrap();
        for (key, want) in &member.arch {
            assert_eq!(&summary[key], want, "{}: {key}", member.file);
        }
        let refs = reference(member);
        if let Some(count) = refs.get("parameters") {
            assert_eq!(
                loaded.config.parameter_count() as f32,
                count.values[0],
                "{}: parameters as timm counts them",
                member.file
            );
        }
        let (logits, stages) = loaded.model.forward_taps(to_tensor(&refs["input"], device));
        let mut outputs = vec![("logits".to_string(), values(logits))];
        for (i, stage) in stages.into_iter().enumerate() {
            outputs.push((format!("stage{}", i + 1), values(stage)));
        }
        for (name, (shape, actual)) in outputs {
            let expected = &refs[&name];
            assert_eq!(shape, expected.shape, "{}: {name} shape", member.file);
            let error = relative_error(&actual, &expected.values);
            eprintln!("{}: {name} relative error {error:.2e}", member.file);
            assert!(
                error <= TOLERANCE,
                "{}: {name} differs from the framework's by {error:e}",
                member.file
            );
        }
    }
}

#[test]
fn paddleclas_members_are_read_and_computed_as_paddleclas_does() {
    check_outputs("paddle", &cpu());
}

#[test]
fn timm_members_are_read_and_computed_as_timm_does() {
    check_outputs("timm", &cpu());
}

fn maps(
    loaded: &LoadedModel,
    methods: &[Method],
    layer: Layer,
    normalize: Normalize,
    device: &Device,
) -> Vec<SampleMaps> {
    let set = SampleSet::load(&family().join("samples")).unwrap();
    let request = CamRequest {
        methods: methods.to_vec(),
        layer,
        target: Target::Predicted,
        batch: 8,
        cancel: Default::default(),
    };
    render::compute_all(
        &loaded.model,
        &set,
        &request,
        normalize,
        SAMPLE_SIZE as usize,
        device,
    )
    .unwrap()
    .0
}

fn assert_correlated(name: &str, actual: &[f32], expected: &[f32]) {
    common::assert_correlated(name, actual, expected, MIN_CORRELATION);
}

/// Every gradient method and EigenCAM, at stage 3 and 4, against pytorch-grad-cam (and
/// an SVD in NumPy) on the same timm network and images.
#[test]
fn timm_members_maps_match_pytorch_grad_cam() {
    let device = cpu();
    let methods = [
        (Method::GradCam, "gradcam"),
        (Method::HiResCam, "hirescam"),
        (Method::GradCamPlusPlus, "gradcam++"),
        (Method::XGradCam, "xgradcam"),
        (Method::LayerCam, "layercam"),
        (Method::EigenCam, "eigencam"),
    ];
    for member in members("timm") {
        let loaded = load(&member, &device);
        let refs = reference(&member);
        for (layer, stage) in [(Layer::Tap("stage3"), "layer3"), (Layer::Last, "layer4")] {
            let all: Vec<Method> = methods.iter().map(|(m, _)| *m).collect();
            let results = maps(&loaded, &all, layer, Normalize::Imagenet, &device);
            for (i, result) in results.iter().enumerate() {
                assert_eq!(
                    result.predicted as f32, refs["predicted"].values[i],
                    "{}: image {i}: predicted class",
                    member.file
                );
                for ((method, key), (computed, map)) in methods.iter().zip(&result.maps) {
                    assert_eq!(method, computed);
                    let expected = &refs[&format!("{key}.{stage}")];
                    let name = format!("{} {key}.{stage} image {i}", member.file);
                    if *method == Method::EigenCam {
                        // At the feature map's resolution, as the SVD gives it.
                        let plane = expected.shape[1] * expected.shape[2];
                        let want = &expected.values[i * plane..(i + 1) * plane];
                        assert_correlated(&name, &map.values, want);
                    } else {
                        let shown = display_map(map, (SAMPLE_SIZE, SAMPLE_SIZE));
                        let want = &expected.values[i * PLANE..(i + 1) * PLANE];
                        assert_correlated(&name, &shown, want);
                    }
                }
            }
        }
    }
}

/// ScoreCAM (a forward pass per channel) on the smallest member.
#[test]
fn scorecam_matches_pytorch_grad_cam_on_resnet18() {
    let device = cpu();
    let member = members("timm")
        .into_iter()
        .find(|m| m.file == "timm_resnet18.pth")
        .expect("resnet18 fixture");
    let loaded = load(&member, &device);
    let refs = reference(&member);
    let results = maps(
        &loaded,
        &[Method::ScoreCam],
        Layer::Last,
        Normalize::Imagenet,
        &device,
    );
    for (i, result) in results.iter().enumerate() {
        let shown = display_map(&result.maps[0].1, (SAMPLE_SIZE, SAMPLE_SIZE));
        let want = &refs["scorecam.layer4"].values[i * PLANE..(i + 1) * PLANE];
        assert_correlated(&format!("resnet18 scorecam image {i}"), &shown, want);
    }
}

/// The original write-up's procedure (raw 0..255 input, channel mean of gradient ×
/// activation), run in PaddlePaddle on PaddleClas's own networks, at stage 3 and 4:
/// camwatch's `hirescam --normalize none` is the same map up to a constant factor.
#[test]
fn paddleclas_members_maps_are_the_writeup_procedure() {
    let device = cpu();
    for member in members("paddle") {
        let loaded = load(&member, &device);
        let refs = reference(&member);
        for (layer, stage) in [(Layer::Tap("stage3"), "stage3"), (Layer::Last, "stage4")] {
            let results = maps(
                &loaded,
                &[Method::HiResCam],
                layer,
                Normalize::None,
                &device,
            );
            let expected = &refs[&format!("writeup.{stage}")];
            let plane = expected.shape[1] * expected.shape[2];
            for (i, result) in results.iter().enumerate() {
                assert_eq!(
                    result.predicted as f32, refs["predicted"].values[i],
                    "{}: image {i}: predicted class",
                    member.file
                );
                let want = &expected.values[i * plane..(i + 1) * plane];
                let name = format!("{} write-up {stage} image {i}", member.file);
                assert_correlated(&name, &result.maps[0].1.values, want);
            }
        }
    }
}

/// The pure-Rust backend builds grouped convolutions and squeeze-excitation too.
#[cfg(feature = "flex")]
#[test]
fn flex_backend_matches_on_grouped_and_squeeze_excitation_members() {
    let device = camwatch::device::select(camwatch::device::DeviceChoice::Flex)
        .expect("flex")
        .device;
    for member in members("timm")
        .into_iter()
        .filter(|m| m.file == "timm_seresnext26d_32x4d.pth" || m.file == "timm_resnet18.pth")
    {
        let loaded = load(&member, &device);
        let refs = reference(&member);
        let (_, logits) = values(loaded.model.logits(to_tensor(&refs["input"], &device)));
        let error = relative_error(&logits, &refs["logits"].values);
        assert!(
            error <= TOLERANCE,
            "{}: logits differ by {error:e}",
            member.file
        );
    }
}

/// A run of another member is followed as a Res2Net run is (maps, trust figures,
/// history); a checkpoint of another network dropped into the same folder is reported
/// and its maps are not mixed in, across a restart too.
#[test]
fn a_resnet_run_is_followed_and_a_change_of_network_is_reported() {
    use common::watch::{Watch, history_json, run_dir, statuses, str_of};

    let dir = run_dir("family-watch");
    std::fs::copy(family().join("timm_resnet18.pth"), dir.join("epoch_1.pth")).unwrap();
    let watch = Watch::start(&dir, &["--metrics", "all"]);
    let first = watch.next();
    assert_eq!(
        (str_of(&first, "status"), &first["epoch"]),
        ("ok", &1.into()),
        "{first}"
    );
    assert!(
        first["samples"][0]["maps"]["gradcam"].is_object(),
        "{first}"
    );
    let measured = loop {
        let line = watch.next();
        assert_eq!(str_of(&line, "event"), "metrics", "{line}");
        let samples = line["samples"].as_array().unwrap();
        if samples.iter().all(|s| s.get("metrics").is_some()) {
            break line;
        }
    };
    assert!(measured["samples"][0]["metrics"]["gradcam"]["road_combined"].is_f64());

    std::fs::copy(family().join("timm_resnet34d.pth"), dir.join("epoch_2.pth")).unwrap();
    let changed = watch.next();
    assert_eq!(str_of(&changed, "status"), "error", "{changed}");
    let error = str_of(&changed, "error");
    for part in ["epoch_2.pth", "ResNet34_vd", "ResNet18", "changed mid-run"] {
        assert!(error.contains(part), "{part} in {error}");
    }
    assert!(watch.interrupt().success());

    let again = Watch::start(&dir, &["--metrics", "all"]);
    let replayed = again.take(2);
    assert!(replayed.iter().all(|l| str_of(l, "source") == "history"));
    again.expect_quiet(std::time::Duration::from_secs(3));
    assert!(again.interrupt().success());
    let dump = history_json(&dir, &[]);
    let statuses = statuses(&dump);
    assert_eq!(
        statuses,
        [
            ("epoch_1.pth".to_string(), "ok".to_string()),
            ("epoch_2.pth".to_string(), "error".to_string())
        ]
    );
}
