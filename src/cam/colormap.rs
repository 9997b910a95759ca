//! Colormaps for heatmaps: OpenCV's tables, so that `jet` is `COLORMAP_JET`.

use std::fmt;
use std::str::FromStr;

use super::colormap_tables;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Colormap {
    #[default]
    Jet,
    Turbo,
    Viridis,
    Inferno,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [
        Colormap::Jet,
        Colormap::Turbo,
        Colormap::Viridis,
        Colormap::Inferno,
    ];

    /// 256 RGB entries.
    pub fn table(self) -> &'static [[u8; 3]; 256] {
        match self {
            Colormap::Jet => &colormap_tables::JET,
            Colormap::Turbo => &colormap_tables::TURBO,
            Colormap::Viridis => &colormap_tables::VIRIDIS,
            Colormap::Inferno => &colormap_tables::INFERNO,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Jet => "jet",
            Colormap::Turbo => "turbo",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
        }
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Colormap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Colormap::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!("unknown colormap {s:?}: expected jet, turbo, viridis or inferno")
            })
    }
}
