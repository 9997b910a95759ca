//! `camwatch show --checkpoint FILE IMAGE`: one overlay printed inline (kitty, iTerm2,
//! sixel, or colour blocks), for a quick look over SSH without the TUI.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use camwatch::render;

use super::CliResult;
use super::cam_args::CamArgs;

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub cam: CamArgs,
    /// The image to explain (its folder's labels.csv and camwatch.toml apply).
    pub image: PathBuf,
    /// Width in terminal columns [default: fit the terminal].
    #[arg(long)]
    pub width: Option<u32>,
}

pub fn run(args: ShowArgs) -> CliResult {
    let computed = args.cam.compute(&args.image)?;
    let (set, resolved, results) = (&computed.set, &computed.resolved, &computed.results);
    let style = args.cam.style(false);
    let (sample, result) = (&set.samples[0], &results[0]);
    let classes = set.classes.as_deref().unwrap_or(&[]);
    let class_name = |c: usize| {
        classes
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    };
    for (method, map) in &result.maps {
        let overlay = render::draw(&sample.image, map, &style).overlay;
        println!(
            "{} · {} · {} · target {} (p = {:.3}), predicted {}",
            camwatch::paths::for_terminal(&sample.name),
            method,
            resolved.request.layer,
            camwatch::paths::for_terminal(&class_name(result.target)),
            result.probs.get(result.target).copied().unwrap_or(f32::NAN),
            camwatch::paths::for_terminal(&class_name(result.predicted))
        );
        // Graphics protocols are probed by querying the terminal; when the output is
        // not one (a pipe, a log) the probe would only leave escape codes behind.
        let terminal = std::io::stdout().is_terminal();
        let config = viuer::Config {
            width: args.width,
            absolute_offset: false,
            use_kitty: terminal,
            use_iterm: terminal,
            use_sixel: terminal,
            ..Default::default()
        };
        viuer::print(&image::DynamicImage::ImageRgb8(overlay), &config)
            .map_err(|e| format!("cannot print the image: {e}"))?;
    }
    Ok(())
}
