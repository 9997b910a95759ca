//! `camwatch report RUN_A RUN_B … --out DIR`: runs compared by epoch, for a pull request
//! or a lab notebook: `charts.png` (one line per run), `samples.png` (each sample's
//! overlays side by side at one epoch, and the difference of the last two runs' maps),
//! `figures.csv` (every number of the charts) and `report.md` embedding them.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use camwatch::compare::{self, FIGURES, Run};
use camwatch::monitor::{self, CheckpointReport};
use camwatch::render;
use camwatch::report;

use super::CliResult;
use super::history::read_runs;
use super::run_args::RunArgs;

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// More runs to compare with the first.
    #[arg(value_name = "RUN")]
    pub more: Vec<PathBuf>,
    /// Output folder: report.md, charts.png, samples.png, figures.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// The epoch of samples.png [default: the last epoch every run has, else each run's
    /// last]
    #[arg(long)]
    pub epoch: Option<u64>,
}

pub fn run(args: ReportArgs) -> CliResult {
    let (shared, stored) = read_runs(&args.run, &args.more)?;
    let method = shared.settings.request.methods[0];
    let samples = &shared.samples.samples;
    let dirs: Vec<&std::path::Path> = stored.iter().map(|r| r.dir.as_path()).collect();
    let runs: Vec<Run> = stored
        .iter()
        .zip(compare::run_names(&dirs))
        .map(|(r, name)| Run {
            name,
            first_on_object: r.first_on_object,
            checkpoints: r.checkpoints.clone(),
        })
        .collect();
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let save = |name: &str, image: &image::RgbImage| -> CliResult {
        let mut png = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        render::write_atomically(&args.out.join(name), &png)?;
        Ok(())
    };
    save("charts.png", &report::charts(&runs, method, samples)?)?;

    // The grid's epoch: asked for, or the last all runs have, or each run's last.
    let common = runs
        .iter()
        .map(|r| {
            compare::epochs(&r.checkpoints)
                .into_iter()
                .map(|(e, _)| e)
                .collect::<Vec<_>>()
        })
        .reduce(|a, b| a.into_iter().filter(|e| b.contains(e)).collect())
        .unwrap_or_default();
    let wanted = args.epoch.or(common.last().copied());
    let mut columns = Vec::new();
    let mut cells = vec![Vec::new(); samples.len()];
    let keys = monitor::sample_keys(&shared.samples, shared.settings.request.target);
    let setting = monitor::setting(&shared.settings, shared.steps);
    for (run, stored) in runs.iter().zip(&stored) {
        let epochs = compare::epochs(&run.checkpoints);
        let chosen = match wanted {
            Some(e) => epochs.iter().find(|(epoch, _)| *epoch == e),
            None => epochs.last(),
        };
        let Some(&(epoch, checkpoint)) = chosen else {
            return Err(format!(
                "{}: no checkpoint of epoch {} with maps",
                stored.dir.display(),
                wanted.map_or("any".into(), |e| e.to_string())
            )
            .into());
        };
        let results = stored.history.results(&checkpoint.hash, &setting, &keys)?;
        for (cell, result) in cells.iter_mut().zip(results) {
            cell.push(
                result
                    .maps
                    .into_iter()
                    .find(|m| m.method == method)
                    .map(|m| m.map),
            );
        }
        columns.push((run.name.clone(), epoch));
    }
    let style = args.run.cam.style(false);
    save(
        "samples.png",
        &report::sample_grid(samples, &columns, &cells, &style, 160)?,
    )?;

    let mut csv = String::from("run,epoch,figure,value\n");
    for run in &runs {
        for (epoch, checkpoint) in compare::epochs(&run.checkpoints) {
            for figure in &FIGURES {
                if let Some(v) = figure.at(checkpoint, method, samples) {
                    let _ = writeln!(csv, "{},{epoch},{},{v}", run.name, figure.name);
                }
            }
        }
    }
    render::write_atomically(&args.out.join("figures.csv"), csv.as_bytes())?;
    let markdown = markdown(&runs, &columns, method, samples);
    render::write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    eprintln!(
        "camwatch: {} run(s) compared → {}",
        runs.len(),
        args.out.join("report.md").display()
    );
    Ok(())
}

fn markdown(
    runs: &[Run],
    columns: &[(String, u64)],
    method: camwatch::cam::Method,
    samples: &[camwatch::cam::Sample],
) -> String {
    let mut md = format!(
        "# Attention compared: {}\n\n{} at the chosen layer; figures are means over the \
         {} samples. *On the object from*: the first epoch from which the pointing hits \
         stay at 75 % or more.\n\n| run | epochs | on the object from | last epoch |",
        runs.iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(" vs "),
        method,
        samples.len()
    );
    for figure in &FIGURES {
        let _ = write!(md, " {} |", figure.name);
    }
    md.push_str("\n|---|---|---|---|");
    md.push_str(&"---|".repeat(FIGURES.len()));
    md.push('\n');
    for run in runs {
        let epochs = compare::epochs(&run.checkpoints);
        let last: Option<&(u64, &CheckpointReport)> = epochs.last();
        let _ = write!(
            md,
            "| {} | {} | {} | {} |",
            run.name,
            epochs.len(),
            run.first_on_object
                .map_or("never".into(), |e| e.to_string()),
            last.map_or("-".into(), |(e, _)| e.to_string())
        );
        for figure in &FIGURES {
            let value = last.and_then(|(_, c)| figure.at(c, method, samples));
            let _ = write!(md, " {} |", value.map_or("-".into(), |v| format!("{v:.3}")));
        }
        md.push('\n');
    }
    let _ = write!(
        md,
        "\n## Per epoch\n\n![charts](charts.png)\n\nEvery value is in `figures.csv`.\n\n\
         ## The samples\n\n{}{}\n\n![samples](samples.png)\n",
        columns
            .iter()
            .map(|(name, epoch)| format!("{name} at epoch {epoch}"))
            .collect::<Vec<_>>()
            .join(", "),
        if columns.len() >= 2 {
            format!(
                "; the last column is {b}'s map minus {a}'s (red: where {b} looks more, blue: \
                 where {a} does)",
                a = columns[columns.len() - 2].0,
                b = columns[columns.len() - 1].0
            )
        } else {
            String::new()
        }
    );
    md
}
