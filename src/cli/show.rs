//! `camwatch show --checkpoint FILE IMAGE`: one overlay printed inline with the UI's
//! encoders (kitty, iTerm2, sixel or halfblocks, chosen the same way), for a quick look
//! over SSH without the UI.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use camwatch::render;
use camwatch::tui::graphics::{self, Graphics, Protocol};
use camwatch::tui::{self, ProtocolChoice};

use super::CliResult;
use super::cam_args::CamArgs;

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub cam: CamArgs,
    /// The image to explain (its folder's labels.csv and camwatch.toml apply).
    pub image: PathBuf,
    /// Width in terminal columns [default: fit the terminal, caption included]
    #[arg(long)]
    pub width: Option<u16>,
    /// Terminal graphics: auto (ask the terminal), kitty, sixel, iterm2, halfblocks.
    #[arg(long, default_value = "auto")]
    pub protocol: ProtocolChoice,
}

pub fn run(args: ShowArgs) -> CliResult {
    let computed = args.cam.compute(&args.image)?;
    let (set, results) = (&computed.set, &computed.results);
    let style = args.cam.style(false);
    let (sample, result) = (&set.samples[0], &results[0]);
    let classes = set.classes.as_deref().unwrap_or(&[]);
    let class_name = |c: usize| {
        classes
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    };
    // Graphics protocols are found by asking the terminal; when the output is not one
    // (a pipe, a log) the questions would only leave escape codes behind.
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let graphics = if terminal {
        tui::probe_outside_ui(args.protocol).graphics
    } else {
        Graphics {
            protocol: Protocol::Halfblocks,
            cell: (10, 20),
        }
    };
    let (columns, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    // The caption above and the prompt below stay on screen.
    let cells = match args.width {
        Some(width) => (width.max(1), u16::MAX / 2),
        None => (columns, rows.saturating_sub(3).max(1)),
    };
    let mut out = std::io::stdout().lock();
    for (method, map) in &result.maps {
        let overlay = render::draw(&sample.image, map, &style).overlay;
        writeln!(
            out,
            "{} · {} · {} · target {} (p = {:.3}), predicted {}",
            camwatch::paths::for_terminal(&sample.name),
            method,
            computed.layer_name(),
            camwatch::paths::for_terminal(&class_name(result.target)),
            result.probs.get(result.target).copied().unwrap_or(f32::NAN),
            camwatch::paths::for_terminal(&class_name(result.predicted))
        )?;
        let encoded = graphics
            .encode(&overlay, sample.bbox.as_ref(), cells)
            .ok_or("cannot encode the image for this terminal")?;
        graphics::print_inline(&mut out, &encoded)?;
    }
    Ok(())
}
