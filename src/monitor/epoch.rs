//! Epoch numbers from the names training frameworks give their checkpoints.

use std::path::Path;

/// The epoch a checkpoint's path names, if any:
/// `epoch_12.pdparams` (PaddleClas), `12/ppcls.pdparams` (older PaddleClas),
/// `epoch=12-step=3400.ckpt` (Lightning), `checkpoint-12.pth.tar` (timm),
/// `model_e12.pth`, `run-12.safetensors`. `latest`, `last`, `best…` name no epoch: they
/// are ordered by time.
pub fn epoch_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_string_lossy();
    let stem = super::scan::strip_extension(&name).unwrap_or(&name);
    let lower = stem.to_ascii_lowercase();
    if ["latest", "last", "best"]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        return None;
    }
    if let Some(rest) = lower.strip_prefix("epoch=") {
        return leading_number(rest);
    }
    if let Some(n) = lower
        .strip_prefix("epoch_")
        .or_else(|| lower.strip_prefix("epoch"))
        .and_then(leading_number)
    {
        return Some(n);
    }
    // PaddleClas before 2.0: <epoch>/ppcls.pdparams.
    if lower == "ppcls" || lower == "model" {
        let parent = path.parent()?.file_name()?.to_str()?;
        return parent.parse().ok();
    }
    // A trailing number after `_e`, `-`, `_` or `.`: `model_e12`, `checkpoint-12`, `net_12`.
    let digits = lower.len() - lower.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == lower.len() {
        return lower.parse().ok();
    }
    let (head, number) = lower.split_at(lower.len() - digits);
    let separated = head.ends_with(['-', '_', '.']) || head.ends_with("_e") || head.ends_with("-e");
    separated.then(|| number.parse().ok()).flatten()
}

fn leading_number(s: &str) -> Option<u64> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_wild() {
        let cases = [
            ("output/Res2Net/epoch_12.pdparams", Some(12)),
            ("output/12/ppcls.pdparams", Some(12)),
            (
                "lightning_logs/version_0/checkpoints/epoch=7-step=3400.ckpt",
                Some(7),
            ),
            ("output/train/checkpoint-15.pth.tar", Some(15)),
            ("runs/model_e21.pth", Some(21)),
            ("runs/res2net-4.safetensors", Some(4)),
            ("runs/epoch9.pt", Some(9)),
            ("7.pdparams", Some(7)),
            ("latest.pdparams", None),
            ("last.ckpt", None),
            ("last.pth.tar", None),
            ("best_model.pdparams", None),
            ("res2net50.pth", None),
        ];
        for (path, epoch) in cases {
            assert_eq!(epoch_of(Path::new(path)), epoch, "{path}");
        }
    }
}
