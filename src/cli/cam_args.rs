//! The flags `render` and `show` share, merged with the sample set's `camwatch.toml`:
//! a flag wins over the file, the file over the built-in default.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use camwatch::cam::image_ops::Blend;
use camwatch::cam::metrics::{self, MetricSettings};
use camwatch::cam::samples::RunDefaults;
use camwatch::cam::{
    CamRequest, Colormap, Layer, Method, Normalize, Sample, SampleMaps, SampleSet, Target, Timings,
};
use camwatch::device::{self, DeviceChoice, SelectedDevice};
use camwatch::loader::{self, LoadedModel};
use camwatch::model::Hints;
use camwatch::precision::{self, PrecisionChoice};
use camwatch::render::{self, CamSettings, OverlayStyle, SampleTrust};

use super::CliResult;

/// One checkpoint explained: `render` and `show`.
#[derive(Args, Debug)]
pub struct CamArgs {
    /// The weight file: .pdparams, .pt/.pth/.pth.tar/.ckpt or .safetensors.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub options: CamOptions,
}

/// What to compute and how to draw it: `render`, `show`, `watch` and `history`.
#[derive(Args, Debug)]
pub struct CamOptions {
    /// Where runs and checkpoints kept in object storage are fetched to, with their
    /// histories [default: the user's cache folder, camwatch/stores]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// CAM method(s), repeatable or comma-separated [default: gradcam]
    #[arg(long = "method", value_delimiter = ',')]
    pub methods: Vec<Method>,
    /// Feature map: last (the last before global pooling), or one of the network's
    /// layers by name (stage1 … stage4 of a ResNet; `camwatch info` lists them)
    /// [default: last]
    #[arg(long)]
    pub layer: Option<Layer>,
    /// Class to explain: predicted, label (from labels.csv) or an index [default: predicted]
    #[arg(long)]
    pub target: Option<Target>,
    /// Input scaling: imagenet, unit (0..1) or none (0..255) [default: imagenet]
    #[arg(long)]
    pub normalize: Option<Normalize>,
    /// Images are resized (bilinear) to N×N, N in 32..=2048 [default: 224; render and
    /// show: the size a ViT was made for]
    #[arg(long, value_parser = parse_input_size)]
    pub input_size: Option<usize>,
    /// auto, cpu, cuda[:N] or flex
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// The network's name where the checkpoint does not say what its tensors cannot tell
    /// (timm's `tf_efficientnet_b0`: TensorFlow padding and BatchNorm epsilon)
    #[arg(long, value_name = "NAME")]
    pub arch: Option<String>,
    /// The forward pass: fp32, bf16, or auto (bf16 where it gives fp32's maps: stage4,
    /// methods other than scorecam and eigencam; and where it was measured faster on
    /// this device, once) [default: fp32]
    #[arg(long)]
    pub precision: Option<PrecisionChoice>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Heatmap colours: jet (OpenCV's), turbo, viridis, inferno.
    #[arg(long, default_value = "jet")]
    pub colormap: Colormap,
    /// How the heatmap is laid over the image: alpha (the heat's own weight, clear over
    /// any image), writeup (the write-up's heatmap·0.4 + image) or gradcam
    /// (pytorch-grad-cam's (1 − W)·heatmap + W·image) [default: alpha]
    #[arg(long)]
    pub overlay: Option<Blend>,
    /// The image's weight W for `--overlay gradcam` (implies it) [default: 0.5]
    #[arg(long, value_name = "W", value_parser = parse_weight)]
    pub image_weight: Option<f32>,
    /// Can the maps be trusted: all, none, or a list of confidence, deletion, insertion,
    /// road and sanity [render, check: none; watch: all]
    #[arg(long, value_name = "LIST", value_parser = MetricSettings::parse)]
    pub metrics: Option<MetricSettings>,
    /// Steps n of deletion and insertion: n forward passes per map each
    #[arg(long, value_name = "N", default_value_t = metrics::DEFAULT_STEPS,
          value_parser = parse_steps)]
    pub metric_steps: usize,
}

fn parse_input_size(s: &str) -> Result<usize, String> {
    let n = s
        .parse::<usize>()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    camwatch::cam::options::check_input_size(n)
}

fn parse_steps(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a step count in 1..=1024")),
    }
}

fn parse_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if (0.0..=1.0).contains(&w) => Ok(w),
        _ => Err(format!("{s:?} is not a weight between 0 and 1")),
    }
}

/// A sample set explained by a checkpoint, with everything learned on the way.
pub struct Computed {
    pub set: SampleSet,
    pub resolved: CamSettings,
    pub device: SelectedDevice,
    pub loaded: LoadedModel,
    pub results: Vec<SampleMaps>,
    pub timings: Timings,
    /// From opening the checkpoint to having every map.
    pub total: Duration,
}

impl CamArgs {
    /// Loads the samples and the checkpoint and computes every map asked for.
    pub fn compute(&self, samples: &Path) -> CliResult<Computed> {
        let set = SampleSet::load(samples)?;
        let device = device::select(self.options.device)?;
        let mut resolved = self.options.resolve(&set, &device);
        let start = Instant::now();
        let file =
            super::run_args::local_checkpoint(&self.checkpoint, self.options.cache.as_deref())?;
        let hints = Hints {
            name: self.options.arch.clone(),
        };
        let mut loaded = loader::load_with(&file, &device.device, &hints)?;
        // A network made for one input size (a ViT's position embedding) is run at it
        // unless a size was asked for.
        if let (None, None, Some(native)) = (
            self.options.input_size,
            set.defaults.input_size,
            loaded.config.input_size(),
        ) {
            resolved.input_size = native;
        }
        loaded.model = precision::cast(loaded.model, resolved.precision, resolved.request.layer);
        let (results, timings) = render::compute_all(
            &loaded.model,
            &set,
            &resolved.request,
            resolved.normalize,
            resolved.input_size,
            &device.device,
        )?;
        Ok(Computed {
            total: start.elapsed(),
            set,
            resolved,
            device,
            loaded,
            results,
            timings,
        })
    }

    pub fn style(&self, side_by_side: bool) -> OverlayStyle {
        self.options.style(side_by_side)
    }
}

impl Computed {
    /// The layer's name in the network: `last` resolved (`stage4` of a ResNet).
    pub fn layer_name(&self) -> String {
        let (model, layer) = (&self.loaded.model, self.resolved.request.layer);
        match camwatch::cam::engine::tap_of(model, layer) {
            Ok(tap) => model.tap_names()[tap].clone(),
            Err(_) => layer.to_string(),
        }
    }

    /// The trust figures of every sample's maps (none when `metrics` is off).
    pub fn trust(&self, metrics: &MetricSettings) -> CliResult<Vec<SampleTrust>> {
        if metrics.is_off() {
            return Ok(vec![SampleTrust::default(); self.results.len()]);
        }
        let (model, request) = (&self.loaded.model, &self.resolved.request);
        let random = metrics
            .sanity
            .then(|| {
                render::untrained_like(
                    &self.loaded.config,
                    model,
                    request.layer,
                    &self.device.device,
                )
            })
            .transpose()?;
        let samples: Vec<&Sample> = self.set.samples.iter().collect();
        Ok(render::compute_trust(
            model,
            random.as_ref(),
            &samples,
            &self.results,
            &self.resolved,
            metrics,
            &self.device.device,
        )?)
    }
}

impl CamOptions {
    /// What to compute for `set` on `device`.
    pub fn resolve(&self, set: &SampleSet, device: &SelectedDevice) -> CamSettings {
        let (defaults, images) = (&set.defaults, set.samples.len());
        let mut methods = if self.methods.is_empty() {
            defaults
                .methods
                .clone()
                .unwrap_or_else(|| vec![Method::GradCam])
        } else {
            self.methods.clone()
        };
        let mut seen = std::collections::HashSet::new();
        methods.retain(|m| seen.insert(*m));
        let layer = self.layer.or(defaults.layer).unwrap_or(Layer::LAST);
        let batch = self.batch.max(1);
        let input_size = self.input_size.or(defaults.input_size).unwrap_or(224);
        let precision = self.precision_choice(defaults).resolve(
            device,
            &methods,
            layer,
            images.min(batch),
            input_size,
        );
        CamSettings {
            request: CamRequest {
                methods,
                layer,
                target: self.target.or(defaults.target).unwrap_or(Target::Predicted),
                batch,
                cancel: Default::default(),
            },
            normalize: self
                .normalize
                .or(defaults.normalize)
                .unwrap_or(Normalize::Imagenet),
            input_size,
            precision,
        }
    }

    /// `--precision`, else `precision` in camwatch.toml, else fp32.
    pub fn precision_choice(&self, defaults: &RunDefaults) -> PrecisionChoice {
        self.precision
            .or(defaults.precision)
            .unwrap_or(PrecisionChoice::Fp32)
    }

    /// `--metrics` and `--metric-steps`; `default` when `--metrics` is not given.
    pub fn metric_settings(&self, default: &str) -> MetricSettings {
        let mut settings = self
            .metrics
            .clone()
            .unwrap_or_else(|| MetricSettings::parse(default).unwrap_or_default());
        settings.steps = self.metric_steps;
        settings
    }

    pub fn style(&self, side_by_side: bool) -> OverlayStyle {
        OverlayStyle {
            colormap: self.colormap,
            blend: match (self.overlay, self.image_weight) {
                (Some(Blend::ImageWeight(_)) | None, Some(w)) => Blend::ImageWeight(w),
                (Some(blend), _) => blend,
                (None, None) => Blend::Alpha,
            },
            side_by_side,
        }
    }
}
