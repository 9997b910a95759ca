//! What a CAM computation is asked for: methods, layer, target class, preprocessing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a method needs and where it works: the one table the engine, the command
/// line (its help and errors), the UI and `--precision auto` read, so that adding a
/// method touches one place.
pub struct MethodInfo {
    pub method: Method,
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Needs ∂score/∂A (free at the last stage, by autodiff before it).
    pub gradient: bool,
    /// Reads the classifier's weights, so works on the last stage only.
    pub last_stage_only: bool,
    /// bf16's forward pass gives fp32's maps (tests/precision.rs): `--precision auto`
    /// uses bf16 only for such methods.
    pub bf16_exact: bool,
}

/// In the order of [`Method`]'s variants.
const METHODS: [MethodInfo; 8] = [
    MethodInfo {
        method: Method::Cam,
        name: "cam",
        about: "the classifier's weights for the target (last layer; a classifier right after its pooling)",
        gradient: false,
        last_stage_only: true,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::GradCam,
        name: "gradcam",
        about: "channels weighted by their mean gradient",
        gradient: true,
        last_stage_only: false,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::HiResCam,
        name: "hirescam",
        about: "gradient times activation, summed over channels (the write-up's)",
        gradient: true,
        last_stage_only: false,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::GradCamPlusPlus,
        name: "gradcam++",
        about: "channels weighted by positive gradients and pytorch-grad-cam's alphas",
        gradient: true,
        last_stage_only: false,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::XGradCam,
        name: "xgradcam",
        about: "channels weighted by gradients normalised by the activations",
        gradient: true,
        last_stage_only: false,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::LayerCam,
        name: "layercam",
        about: "positive gradient times activation, summed over channels",
        gradient: true,
        last_stage_only: false,
        bf16_exact: true,
    },
    MethodInfo {
        method: Method::EigenCam,
        name: "eigencam",
        about: "the activations' first principal component (no gradient)",
        gradient: false,
        last_stage_only: false,
        bf16_exact: false,
    },
    MethodInfo {
        method: Method::ScoreCam,
        name: "scorecam",
        about: "channels weighted by the scores of inputs they mask (slow)",
        gradient: false,
        last_stage_only: false,
        bf16_exact: false,
    },
];

impl clap::ValueEnum for Method {
    fn value_variants<'a>() -> &'a [Self] {
        &Method::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let info = self.info();
        Some(clap::builder::PossibleValue::new(info.name).help(info.about))
    }
}

/// One way of turning activations (and their gradients) into a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Method {
    /// The classifier's weights for the target class (last stage only).
    Cam,
    GradCam,
    /// Σ g ⊙ A: the original write-up's method, up to a constant factor.
    HiResCam,
    GradCamPlusPlus,
    XGradCam,
    LayerCam,
    /// First principal component of the activations; needs no gradient.
    EigenCam,
    /// Softmax of the target score over inputs masked by each channel; one forward pass
    /// per channel.
    ScoreCam,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Cam,
        Method::GradCam,
        Method::HiResCam,
        Method::GradCamPlusPlus,
        Method::XGradCam,
        Method::LayerCam,
        Method::EigenCam,
        Method::ScoreCam,
    ];

    /// What the method needs and where it works.
    pub fn info(self) -> &'static MethodInfo {
        &METHODS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Whether the method needs ∂score/∂A.
    pub fn needs_gradient(self) -> bool {
        self.info().gradient
    }

    /// Whether the method can work on `layer`: one that reads the classifier's weights
    /// needs the last tap (and, checked with the network, a classifier right after it).
    pub fn supports(self, layer: Layer) -> bool {
        !self.info().last_stage_only || layer == Layer::Last
    }

    /// Every method's name, for messages: `cam, gradcam, … or scorecam`.
    pub fn names() -> String {
        let names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        let (last, rest) = names.split_last().unwrap_or((&"", &[]));
        format!("{} or {last}", rest.join(", "))
    }

    /// Parses a comma-separated list, as `--method` and `camwatch.toml` take it.
    pub fn parse_list(s: &str) -> Result<Vec<Method>, OptionError> {
        s.split(',').map(|m| m.trim().parse()).collect()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| OptionError::Method(s.to_string()))
    }
}

/// Which of the network's taps (feature maps) the maps are computed on: `last` (the last
/// spatial feature map before global pooling, the default), or a tap by the network's
/// name for it (`stage1` … `stage3` of a ResNet, `stages.2` of a ConvNeXt,
/// `blocks.5.norm1` of a ViT; `camwatch info` lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Last,
    /// A tap by name (never `last`).
    Tap(&'static str),
}

impl Layer {
    /// The last tap, the original write-up's feature map.
    pub const LAST: Layer = Layer::Last;

    /// The tap's name, `None` for `last`.
    pub fn tap_name(self) -> Option<&'static str> {
        match self {
            Layer::Last => None,
            Layer::Tap(name) => Some(name),
        }
    }

    /// What the history keys the layer's results by: the tap's name, and for `last`
    /// `stage4`, the key it has had since camwatch read only ResNets (whose last tap it
    /// is), so that their histories keep their maps.
    pub fn history_key(self) -> &'static str {
        match self {
            Layer::Last => "stage4",
            Layer::Tap(name) => name,
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Last => "last",
            Layer::Tap(name) => name,
        })
    }
}

// By hand rather than derived: serde would take the name's `&'static str` for a borrow.
impl Serialize for Layer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Longest tap name accepted: module paths are short.
const MAX_LAYER_NAME: usize = 64;

impl FromStr for Layer {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path_like = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_LAYER_NAME
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        match s {
            // `stage4` is the last tap of the four-stage families, and was the name of
            // `last` before other families.
            "last" | "stage4" => Ok(Layer::Last),
            s if path_like(s) => Ok(Layer::Tap(intern(s))),
            _ => Err(OptionError::Layer(s.to_string())),
        }
    }
}

/// A tap name that lives as long as the program, so that [`Layer`] stays `Copy`: names
/// come from the command line, sample sets' settings and networks, a handful each.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The class whose score the maps explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    Predicted,
    /// The sample's label from `labels.csv`.
    Label,
    Class(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Predicted => f.write_str("predicted"),
            Target::Label => f.write_str("label"),
            Target::Class(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Target {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "predicted" => Ok(Target::Predicted),
            "label" => Ok(Target::Label),
            n => n
                .parse()
                .map(Target::Class)
                .map_err(|_| OptionError::Target(s.to_string())),
        }
    }
}

/// Input sizes camwatch accepts: the network downsamples by 32, so a smaller input has
/// no feature map at stage 4; a larger one costs gigabytes per image.
pub const INPUT_SIZES: std::ops::RangeInclusive<usize> = 32..=2048;

/// `n` if it is in [`INPUT_SIZES`], else why not.
pub fn check_input_size(n: usize) -> Result<usize, String> {
    if INPUT_SIZES.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "input size {n} is outside {}..={}",
            INPUT_SIZES.start(),
            INPUT_SIZES.end()
        ))
    }
}

/// Input scaling before the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Normalize {
    /// (x/255 − mean) / std with ImageNet's mean and std: what timm and most trainers use.
    Imagenet,
    /// x / 255.
    Unit,
    /// Raw 0..255, as the original write-up fed its network.
    None,
}

impl fmt::Display for Normalize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Normalize::Imagenet => "imagenet",
            Normalize::Unit => "unit",
            Normalize::None => "none",
        })
    }
}

impl FromStr for Normalize {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "imagenet" => Ok(Normalize::Imagenet),
            "unit" => Ok(Normalize::Unit),
            "none" => Ok(Normalize::None),
            _ => Err(OptionError::Normalize(s.to_string())),
        }
    }
}

/// Serde goes through the names the command line uses (`FromStr` and `Display`), so
/// that `camwatch.toml` and `summary.json` spell options as flags do.
macro_rules! serde_as_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = OptionError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.to_string()
            }
        }
    )*};
}

serde_as_string!(Method, Target, Normalize);

#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    #[error("unknown method {0:?}: expected {names}", names = Method::names())]
    Method(String),
    #[error("unknown layer {0:?}: expected last or a tap's name (`camwatch info` lists them)")]
    Layer(String),
    #[error("unknown target {0:?}: expected predicted, label or a class index")]
    Target(String),
    #[error("unknown normalisation {0:?}: expected imagenet, unit or none")]
    Normalize(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
            assert_eq!(m.info().method, m, "METHODS is in the variants' order");
        }
        assert_eq!(
            Method::parse_list("gradcam, gradcam++").unwrap(),
            [Method::GradCam, Method::GradCamPlusPlus]
        );
        assert!(Method::parse_list("gradcam,grad").is_err());
        assert_eq!("stage2".parse::<Layer>().unwrap(), Layer::Tap("stage2"));
        assert_eq!("stage4".parse::<Layer>().unwrap(), Layer::Last);
        assert_eq!(
            "blocks.11.norm1".parse::<Layer>().unwrap().to_string(),
            "blocks.11.norm1"
        );
        assert!("stage 2".parse::<Layer>().is_err());
        assert_eq!("3".parse::<Target>().unwrap(), Target::Class(3));
        assert!("three".parse::<Target>().is_err());
        assert_eq!("none".parse::<Normalize>().unwrap(), Normalize::None);
    }
}
