//! The families beyond the ResNets, each member written by its own framework
//! (tools/make_network_fixtures.py: timm, PaddleClas's model code) with weights moved off
//! their initial values: the architecture camwatch reads off the file, its logits and
//! layers against the framework's, its maps against pytorch-grad-cam at its documented
//! target layers (timm) or Grad-CAM computed in PaddlePaddle (PaddleClas); and, from
//! names and shapes alone, every member camwatch claims and the families it refuses.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::Device;
use camwatch::cam::{CamRequest, Layer, Method, Normalize, SampleMaps, SampleSet, Target};
use camwatch::checkpoint::{WeightTensor, Weights};
use camwatch::loader::{self, LoadedModel};
use camwatch::model::Hints;
use camwatch::render::{self, ArchSummary, display_map};
use common::{cpu, relative_error, to_tensor, values};

/// Logits and layers: 1e-4 of the reference's largest magnitude, as for the ResNets.
const TOLERANCE: f32 = 1e-4;
/// Maps against the framework's.
const MIN_CORRELATION: f32 = 0.99999;

#[derive(serde::Deserialize)]
struct Member {
    file: String,
    reference: String,
    family: String,
    variant: String,
    name: Option<String>,
    classes: usize,
    samples: String,
    input_size: usize,
    last_tap: String,
    taps_checked: Vec<String>,
    methods: Vec<String>,
}

fn networks() -> PathBuf {
    common::fixture_set("networks", "tools/make_network_fixtures.py")
}

fn members(family: &str) -> Vec<Member> {
    let all: Vec<Member> = common::set_manifest(&networks());
    let members: Vec<Member> = all.into_iter().filter(|m| m.family == family).collect();
    assert!(!members.is_empty(), "no {family} members in the manifest");
    members
}

fn reference(member: &Member) -> BTreeMap<String, WeightTensor> {
    common::read_tensors(&networks().join(&member.reference))
}

fn load(member: &Member, device: &Device) -> LoadedModel {
    loader::load(&networks().join(&member.file), device).unwrap_or_else(|e| panic!("{e}"))
}

/// The architecture read off the file, the logits and every layer checked against the
/// framework's, for each member of `family`.
fn check_outputs(family: &str, device: &Device) {
    for member in members(family) {
        let loaded = load(&member, device);
        let summary = ArchSummary::of(&loaded.config);
        let file = &member.file;
        assert_eq!(summary.family, member.family, "{file}: family");
        assert_eq!(summary.variant, member.variant, "{file}: variant");
        assert_eq!(summary.classes, member.classes, "{file}: classes");
        if let Some(name) = &member.name {
            assert_eq!(&summary.name, name, "{file}: name");
        }
        assert_eq!(
            summary.taps.last(),
            Some(&member.last_tap),
            "{file}: last layer"
        );
        let refs = reference(&member);
        assert_eq!(
            loaded.config.parameter_count() as f32,
            refs["parameters"].values[0],
            "{file}: parameters as the framework counts them"
        );
        let input = to_tensor(&refs["input"], device);
        let mut outputs = vec![(
            "logits".to_string(),
            values(loaded.model.logits(input.clone())),
        )];
        for tap in &member.taps_checked {
            let index = loaded
                .model
                .tap_index(Some(tap))
                .unwrap_or_else(|| panic!("{file}: no layer {tap} in {:?}", summary.taps));
            let map = loaded.model.forward_to(index, input.clone());
            outputs.push((format!("tap.{tap}"), values(map.activation.spatial())));
        }
        for (name, (shape, actual)) in outputs {
            let expected = &refs[&name];
            assert_eq!(shape, expected.shape, "{file}: {name} shape");
            let error = relative_error(&actual, &expected.values);
            eprintln!("{file}: {name} relative error {error:.2e}");
            assert!(
                error <= TOLERANCE,
                "{file}: {name} differs from the framework's by {error:e}"
            );
        }
    }
}

/// The maps of `methods` for the member's first `images` samples.
fn maps(
    loaded: &LoadedModel,
    member: &Member,
    methods: &[Method],
    images: usize,
    device: &Device,
) -> Vec<SampleMaps> {
    let mut set = SampleSet::load(&networks().join(&member.samples)).unwrap();
    set.samples.truncate(images);
    let request = CamRequest {
        methods: methods.to_vec(),
        layer: Layer::Last,
        target: Target::Predicted,
        batch: 8,
        cancel: Default::default(),
    };
    render::compute_all(
        &loaded.model,
        &set,
        &request,
        Normalize::Imagenet,
        member.input_size,
        device,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", member.file))
    .0
}

fn assert_correlated(name: &str, actual: &[f32], expected: &[f32]) {
    common::assert_correlated(name, actual, expected, MIN_CORRELATION);
}

/// Every method the reference has for the member, at its last layer: pytorch-grad-cam's
/// maps at the input's size; EigenCAM (an SVD in NumPy) and PaddlePaddle's at the
/// feature map's.
fn check_maps(family: &str, device: &Device) {
    for member in members(family) {
        let loaded = load(&member, device);
        let refs = reference(&member);
        let methods: Vec<Method> = member
            .methods
            .iter()
            .map(|m| m.parse().unwrap_or_else(|e| panic!("{}: {e}", member.file)))
            .collect();
        // ScoreCAM's reference may cover fewer images: a forward pass per channel and image.
        let (score, others): (Vec<Method>, Vec<Method>) =
            methods.into_iter().partition(|&m| m == Method::ScoreCam);
        let images = refs["predicted"].values.len();
        let mut results = maps(&loaded, &member, &others, images, device);
        if !score.is_empty() {
            let expected = &refs[&format!("scorecam@{}", member.last_tap)];
            let scored = maps(&loaded, &member, &score, expected.shape[0], device);
            for (result, scored) in results.iter_mut().zip(scored) {
                result.maps.extend(scored.maps);
            }
        }
        let size = member.input_size as u32;
        for (i, result) in results.iter().enumerate() {
            assert_eq!(
                result.predicted as f32, refs["predicted"].values[i],
                "{}: image {i}: predicted class",
                member.file
            );
            for (method, map) in &result.maps {
                let expected = &refs[&format!("{method}@{}", member.last_tap)];
                let name = format!("{} {method} image {i}", member.file);
                let plane = expected.shape[1] * expected.shape[2];
                let want = &expected.values[i * plane..(i + 1) * plane];
                if expected.shape[1] == map.height && expected.shape[2] == map.width {
                    assert_correlated(&name, &map.values, want);
                } else {
                    assert_correlated(&name, &display_map(map, (size, size)), want);
                }
            }
        }
    }
}

/// Weights with names and shapes but no values: what detection reads.
fn shapes_only(path: &std::path::Path) -> (Weights, serde_json::Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut weights = Weights::default();
    for (name, shape) in json["tensors"].as_object().expect("tensors") {
        // An integer tensor, which camwatch never reads as a weight.
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let shape: Vec<usize> = serde_json::from_value(shape.clone()).unwrap();
        weights.tensors.insert(
            name.clone(),
            WeightTensor {
                shape,
                values: Vec::new(),
            },
        );
    }
    (weights, json)
}

/// Every member of `family` camwatch claims, from its names and shapes: family, name,
/// classes and parameter count.
fn check_shapes(family: &str) {
    let dir = networks().join("shapes");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let (weights, json) = shapes_only(&path);
        if json["family"] != family {
            continue;
        }
        let hints = Hints {
            name: json["hint"].as_str().map(str::to_string),
        };
        let arch = camwatch::model::infer(&weights, &hints)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let summary = ArchSummary::of(&arch);
        assert_eq!(summary.family, family, "{}", path.display());
        assert_eq!(
            summary.name,
            json["name"].as_str().unwrap(),
            "{}",
            path.display()
        );
        assert_eq!(summary.classes as u64, json["classes"].as_u64().unwrap());
        assert_eq!(
            arch.parameter_count() as u64,
            json["parameters"].as_u64().unwrap(),
            "{}: parameters",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no {family} shapes in {}", dir.display());
}

macro_rules! family_tests {
    ($module:ident, $family:literal) => {
        mod $module {
            use super::*;

            #[test]
            fn architecture_logits_and_layers_are_the_frameworks() {
                check_outputs($family, &cpu());
            }

            #[test]
            fn maps_match_the_reference_implementation() {
                check_maps($family, &cpu());
            }

            #[test]
            fn every_member_is_read_from_names_and_shapes() {
                check_shapes($family);
            }
        }
    };
}

family_tests!(convnext, "convnext");
family_tests!(efficientnet, "efficientnet");
family_tests!(mobilenetv3, "mobilenetv3");
family_tests!(vit, "vit");
family_tests!(pplcnet, "pplcnet");
family_tests!(pphgnet, "pphgnet");

/// Networks of families camwatch does not read are named as such, in one line.
#[test]
fn other_families_are_named() {
    let dir = networks().join("shapes").join("unsupported");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (weights, json) = shapes_only(&path);
        let error = camwatch::model::infer(&weights, &Hints::default())
            .err()
            .unwrap_or_else(|| panic!("{}: read as a supported network", path.display()))
            .to_string();
        eprintln!("{}: {error}", path.display());
        assert!(!error.contains('\n'), "{error}");
        let what = json["family"].as_str().unwrap().to_lowercase();
        let said = error.to_lowercase();
        assert!(
            what.split_whitespace().any(|word| said.contains(word)),
            "{}: {error} does not name {what}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0);
}

/// A run of another family is followed as a ResNet run is: maps on the patch grid, trust
/// figures (the untrained network of the sanity check is the family's own, seeded), the
/// history; `info` lists the layers; `cam`, which needs a classifier right after the
/// pooling, is refused in one line.
#[test]
fn a_deit_run_is_followed_with_trust_figures_and_cam_is_refused_in_one_line() {
    use common::watch::{Watch, history_json, run_dir, statuses, str_of};

    let member = members("vit")
        .into_iter()
        .find(|m| m.file.contains("deit"))
        .expect("a DeiT fixture");
    let dir = run_dir("deit-watch");
    std::fs::copy(networks().join(&member.file), dir.join("epoch_1.pth")).unwrap();

    let info = std::process::Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["info", "--device", "cpu"])
        .arg(dir.join("epoch_1.pth"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{text}");
    for part in [
        "deit_tiny_distilled_patch16_224",
        "blocks.0.norm1",
        "blocks.11.norm1 (last)",
        "224×224",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }

    let watch = Watch::start(&dir, &["--metrics", "all", "--method", "gradcam,eigencam"]);
    let first = watch.next();
    assert_eq!(
        (str_of(&first, "status"), &first["epoch"]),
        ("ok", &1.into()),
        "{first}"
    );
    let map = &first["samples"][0]["maps"]["gradcam"];
    assert_eq!(
        (&map["height"], &map["width"]),
        (&14.into(), &14.into()),
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
    let figures = &measured["samples"][0];
    assert!(
        figures["metrics"]["gradcam"]["road_combined"].is_f64(),
        "{figures}"
    );
    assert!(
        figures["sanity"]["gradcam"]["random_corr"].is_f64(),
        "{figures}"
    );
    assert!(watch.interrupt().success());
    assert_eq!(
        statuses(&history_json(&dir, &[])),
        [("epoch_1.pth".to_string(), "ok".to_string())]
    );

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deit-cam");
    let cam = std::process::Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args([
            "render",
            "--device",
            "cpu",
            "--method",
            "cam",
            "--checkpoint",
        ])
        .arg(dir.join("epoch_1.pth"))
        .arg("--samples")
        .arg(common::watch::root().join("samples"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cam.stderr);
    assert!(!cam.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("`cam`") && stderr.contains("linear layer"),
        "{stderr}"
    );
}
