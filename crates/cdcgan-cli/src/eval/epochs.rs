//! `cdcgan eval --dir`: every epoch's generator of a run, into eval.csv and eval.png.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cdcgan_eval::{Evaluator, Metrics};
use plotters::style::{BLUE, RGBColor};

use super::EvalArgs;
use super::report::{min_max, pct};
use crate::generate::{labelled_set, load_sampler, per_class_labels};
use crate::plot::{Panel, Series, render};

/// The `gen-epoch-NNN.safetensors` files of a run directory, by epoch; none is an error.
pub fn run_epochs(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let epochs = cdcgan_train::epoch_generators(dir)
        .with_context(|| format!("{}: not a run directory", dir.display()))?;
    if epochs.is_empty() {
        bail!(
            "{} holds no gen-epoch-NNN.safetensors files",
            dir.join("checkpoints").display()
        );
    }
    Ok(epochs)
}

/// `cdcgan eval --dir`: every epoch's generator, into eval.csv and eval.png.
pub fn eval_dir(
    dir: &Path,
    epochs: &[(u32, PathBuf)],
    args: &EvalArgs,
    per_class: usize,
    evaluator: &Evaluator,
    real: &Metrics,
) -> Result<()> {
    let mut csv = String::from(
        "epoch,accuracy,fid,intra_fid_mean,diversity_min,diversity_max,real_accuracy,real_fid,real_intra_fid_mean\n",
    );
    let mut rows = Vec::new();
    println!(
        "{:>5} {:>10} {:>9} {:>10} {:>15}",
        "epoch", "accuracy", "FID", "intra-FID", "diversity"
    );
    for (epoch, path) in epochs {
        let sampler = load_sampler(Some(path), !args.raw)?;
        let set = labelled_set(&sampler, per_class_labels(per_class), args.seed)?;
        let m = evaluator.evaluate(&set)?;
        let (dmin, dmax) = min_max(&m.diversity);
        println!(
            "{epoch:>5} {:>10} {:>9.3} {:>10.3} {:>7.3}-{:.3}",
            pct(m.accuracy),
            m.fid,
            m.intra_fid_mean,
            dmin,
            dmax
        );
        let _ = writeln!(
            csv,
            "{epoch},{:.6},{:.6},{:.6},{dmin:.6},{dmax:.6},{:.6},{:.6},{:.6}",
            m.accuracy, m.fid, m.intra_fid_mean, real.accuracy, real.fid, real.intra_fid_mean
        );
        rows.push((f64::from(*epoch), m));
    }
    println!(
        "{:>5} {:>10} {:>9.3} {:>10.3}   (real training digits)",
        "real",
        pct(real.accuracy),
        real.fid,
        real.intra_fid_mean
    );
    let csv_path = dir.join("eval.csv");
    cdcgan_nn::file::write_atomic(&csv_path, csv.as_bytes())
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let png = dir.join("eval.png");
    plot_epochs(&rows, real, &png)?;
    println!("wrote {} and {}", csv_path.display(), png.display());
    Ok(())
}

/// eval.png: label accuracy, FID and intra-class FID against epochs, beside real digits'.
fn plot_epochs(rows: &[(f64, Metrics)], real: &Metrics, png: &Path) -> Result<()> {
    let line = |f: &dyn Fn(&Metrics) -> f64| rows.iter().map(|(e, m)| (*e, f(m))).collect();
    let flat = |v: f64| rows.iter().map(|(e, _)| (*e, v)).collect();
    let panel = |title: &str, y: &'static str, f: &dyn Fn(&Metrics) -> f64| Panel {
        title: format!("{title} (blue: generated, grey: real)"),
        x_desc: "epoch",
        y_desc: y,
        series: vec![
            Series {
                color: BLUE,
                points: line(f),
            },
            Series {
                color: RGBColor(150, 150, 150),
                points: flat(f(real)),
            },
        ],
    };
    render(
        &[
            panel("label accuracy", "%", &|m| 100.0 * m.accuracy),
            panel("FID", "FID", &|m| m.fid),
            panel("intra-class FID", "FID", &|m| m.intra_fid_mean),
        ],
        (1500, 450),
        png,
    )
}
