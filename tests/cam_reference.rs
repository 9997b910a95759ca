//! camwatch's maps against independent implementations (tools/make_fixtures.py):
//! pytorch-grad-cam on the same timm weights and images, the original write-up's
//! procedure run in PaddlePaddle, ScoreCAM from pytorch-grad-cam, an SVD EigenCAM, and
//! OpenCV's colormaps.

mod common;

use camwatch::cam::{
    CamRequest, Colormap, Layer, Method, Normalize, SampleMaps, SampleSet, Target, image_ops,
};
use camwatch::loader;
use camwatch::render::{self, display_map};
use common::{assert_correlated, cpu, fixtures, reference};

const MIN_CORRELATION: f32 = 0.999;

fn run(
    checkpoint: &str,
    samples: &str,
    methods: &[Method],
    layer: Layer,
    normalize: Normalize,
    input_size: usize,
) -> Vec<SampleMaps> {
    let device = cpu();
    let loaded = loader::load(&fixtures().join(checkpoint), &device).unwrap();
    let set = SampleSet::load(&fixtures().join(samples)).unwrap();
    let request = CamRequest {
        methods: methods.to_vec(),
        layer,
        target: Target::Predicted,
        batch: 64,
        cancel: Default::default(),
    };
    render::compute_all(
        &loaded.model,
        &set,
        &request,
        normalize,
        input_size,
        &device,
    )
    .unwrap()
    .0
}

#[test]
fn gradient_methods_match_pytorch_grad_cam() {
    let refs = reference("cam_timm.ref.safetensors");
    let cases = [
        (Method::GradCam, Layer::Last, "gradcam.layer4"),
        (Method::HiResCam, Layer::Last, "hirescam.layer4"),
        (Method::GradCamPlusPlus, Layer::Last, "gradcam++.layer4"),
        (Method::XGradCam, Layer::Last, "xgradcam.layer4"),
        (Method::LayerCam, Layer::Last, "layercam.layer4"),
        (Method::GradCam, Layer::Tap("stage3"), "gradcam.layer3"),
    ];
    for (method, layer, key) in cases {
        let results = run(
            "timm_r50.pth",
            "cam_samples",
            &[method],
            layer,
            Normalize::Imagenet,
            224,
        );
        let expected = &refs[key];
        let plane = 224 * 224;
        for (i, result) in results.iter().enumerate() {
            assert_eq!(
                result.predicted as f32, refs["predicted"].values[i],
                "{key}: predicted class"
            );
            let shown = display_map(&result.maps[0].1, (224, 224));
            let want = &expected.values[i * plane..(i + 1) * plane];
            assert_correlated(&format!("{key} image {i}"), &shown, want, MIN_CORRELATION);
        }
    }
}

#[test]
fn eigencam_matches_numpy_svd() {
    let refs = reference("cam_timm.ref.safetensors");
    for (layer, key) in [
        (Layer::Last, "eigencam.layer4"),
        (Layer::Tap("stage3"), "eigencam.layer3"),
    ] {
        let results = run(
            "timm_r50.pth",
            "cam_samples",
            &[Method::EigenCam],
            layer,
            Normalize::Imagenet,
            224,
        );
        let expected = &refs[key];
        let plane = expected.shape[1] * expected.shape[2];
        for (i, result) in results.iter().enumerate() {
            let map = &result.maps[0].1;
            assert_eq!(
                [map.height, map.width],
                [expected.shape[1], expected.shape[2]]
            );
            let want = &expected.values[i * plane..(i + 1) * plane];
            assert_correlated(
                &format!("{key} image {i}"),
                &map.values,
                want,
                MIN_CORRELATION,
            );
        }
    }
}

#[test]
fn scorecam_matches_pytorch_grad_cam() {
    let refs = reference("cam_small.ref.safetensors");
    let results = run(
        "timm_small.pth",
        "cam_samples_64",
        &[Method::ScoreCam],
        Layer::Last,
        Normalize::Imagenet,
        64,
    );
    let expected = &refs["scorecam.layer4"];
    let plane = 64 * 64;
    for (i, result) in results.iter().enumerate() {
        let shown = display_map(&result.maps[0].1, (64, 64));
        let want = &expected.values[i * plane..(i + 1) * plane];
        assert_correlated(
            &format!("scorecam image {i}"),
            &shown,
            want,
            MIN_CORRELATION,
        );
    }
}

/// The original write-up: raw 0..255 input, channel mean of gradient × activation at the
/// last feature map, in PaddlePaddle on a Paddle-written checkpoint. camwatch's
/// `hirescam --normalize none` is the same map up to a constant factor.
#[test]
fn hirescam_is_the_original_writeup_procedure() {
    let refs = reference("cam_paddle.ref.safetensors");
    let results = run(
        "paddle_r50.p4.pdparams",
        "cam_samples",
        &[Method::HiResCam],
        Layer::Last,
        Normalize::None,
        224,
    );
    let expected = &refs["writeup"];
    let plane = 7 * 7;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(
            result.predicted as f32, refs["predicted"].values[i],
            "image {i}: predicted class"
        );
        let map = &result.maps[0].1;
        let want = &expected.values[i * plane..(i + 1) * plane];
        assert_correlated(
            &format!("write-up image {i}"),
            &map.values,
            want,
            MIN_CORRELATION,
        );
    }
}

#[test]
fn colormaps_are_opencvs_for_all_256_entries() {
    let refs = reference("colormaps.ref.safetensors");
    for colormap in Colormap::ALL {
        let expected = &refs[colormap.name()].values;
        let ramp: Vec<f32> = (0..256).map(|i| i as f32 / 255.0).collect();
        let heat = image_ops::heatmap(&ramp, (256, 1), colormap);
        for (i, pixel) in heat.pixels().enumerate() {
            let want = [expected[3 * i], expected[3 * i + 1], expected[3 * i + 2]];
            assert_eq!(pixel.0.map(f32::from), want, "{colormap} entry {i}");
        }
    }
}

/// `--target label` and `--target N` explain the class asked for, not the prediction.
#[test]
fn target_selection() {
    let device = cpu();
    let loaded = loader::load(&fixtures().join("timm_r50.pth"), &device).unwrap();
    let set = SampleSet::load(&fixtures().join("cam_samples")).unwrap();
    let request = |target| CamRequest {
        methods: vec![Method::GradCam],
        layer: Layer::Tap("stage3"),
        target,
        batch: 3,
        cancel: Default::default(),
    };
    let compute = |target| {
        render::compute_all(
            &loaded.model,
            &set,
            &request(target),
            Normalize::Imagenet,
            224,
            &device,
        )
        .unwrap()
        .0
    };
    let by_label = compute(Target::Label);
    for (sample, result) in set.samples.iter().zip(&by_label) {
        assert_eq!(Some(result.target), sample.label);
    }
    let predicted = compute(Target::Predicted);
    let other = (predicted[0].predicted + 1) % 4;
    let by_class = compute(Target::Class(other));
    assert!(by_class.iter().all(|r| r.target == other));
    assert_ne!(
        by_class[0].maps[0].1, predicted[0].maps[0].1,
        "another class, another map"
    );
    assert!(
        render::compute_all(
            &loaded.model,
            &set,
            &request(Target::Class(4)),
            Normalize::Imagenet,
            224,
            &device
        )
        .is_err()
    );
}
