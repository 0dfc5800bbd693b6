//! `cdcgan train`: a new or resumed run, Ctrl-C, and the end-of-run files. The flags are in
//! `args.rs`, the display in `display.rs`, the data's origin in `source.rs`.

mod args;
mod display;
mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use candle_core::Device;
use cdcgan_train::{Outcome, Run};
use mnist_data::Split;

pub use args::TrainArgs;
use display::Display;
use source::{load_split, start};

use crate::watch::LiveJudge;

/// A run ready to train: the run, its training split and the test split.
type Ready = (Run, Split, Split);

/// Runs `cdcgan train`: finished (also for `--print-config` and a run with nothing left to
/// do), or interrupted by Ctrl-C after saving the checkpoint it names.
pub fn train(args: &TrainArgs) -> Result<Outcome> {
    if args.print_config {
        print!("{}", args.effective_config()?.to_toml());
        return Ok(Outcome::Finished);
    }
    let ready = match &args.resume {
        Some(dir) => match resumed(args, dir)? {
            Some(ready) => ready,
            None => return Ok(Outcome::Finished),
        },
        None => created(args)?,
    };
    let (mut run, split, test) = ready;
    let judge = if run.trainer().config().train.eval_every > 0 {
        // Training does not depend on it: without a judge it goes on unmeasured.
        LiveJudge::new(&split, &test)
            .map_err(|e| eprintln!("warning: quality will not be measured: {e:#}"))
            .ok()
    } else {
        None
    };
    let mut display = Display::new(args, ctrl_c()?, judge);
    let dir = run.dir().to_owned();
    let outcome = run
        .train(&split, &mut display)
        .map_err(|e| with_hint(e, &dir))?;
    display.bar.finish_and_clear();
    match &outcome {
        Outcome::Finished => {
            let (gif, plot) = finish_files(&run)?;
            if !args.quiet && !args.json {
                eprintln!(
                    "done: {} and {} in {}",
                    gif.display(),
                    plot.display(),
                    dir.display()
                );
            }
        }
        Outcome::Interrupted(path) => {
            eprintln!(
                "interrupted: saved {}; continue with `cdcgan train --resume {}`",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(outcome)
}

/// A new run from the flags. Everything that can refuse the start is checked before the run
/// directory is made, so a failed start leaves nothing that blocks `--out` afterwards.
fn created(args: &TrainArgs) -> Result<Ready> {
    let config = args.effective_config()?;
    let (split, test, source) = load_split(args.data.clone(), args.limit)?;
    let batch_size = config.train.batch_size;
    if split.len() < batch_size {
        return Err(cdcgan_train::Error::TooLittleData {
            len: split.len(),
            batch_size,
        }
        .into());
    }
    let run = Run::create(&args.out, config, &Device::Cpu)?;
    let (run, split) = start(run, split, source)?;
    Ok((run, split, test))
}

/// The run in `dir`, retuned by the flags that may change on resume; `None` when it has
/// nothing left to train.
fn resumed(args: &TrainArgs, dir: &Path) -> Result<Option<Ready>> {
    // The run's own config is used (clap refuses the flags that would change it).
    let mut run = Run::resume(dir, &Device::Cpu)?;
    // What may change on resume is what a phase may change, and the length (clap refuses
    // the flags of what a run keeps for life).
    let mut t = args.train.tuning.apply(run.trainer().config().train);
    t.epochs = args.train.epochs.unwrap_or(t.epochs);
    let done = run.trainer().position().epoch;
    if done >= t.epochs {
        // Nothing to train: say so rather than load the data for no step, and leave the
        // run's files (config.toml included) as they are.
        if !args.quiet {
            eprintln!(
                "{} has completed {done} epochs: nothing to train; `--epochs {}` would \
                 continue it",
                dir.display(),
                done + 1
            );
        }
        return Ok(None);
    }
    if t != run.trainer().config().train {
        run.retune(t)?;
    }
    if !args.quiet {
        say_resumed(&run, dir);
    }
    // A resumed run reads the data it was started on unless told otherwise; `bind_data`
    // refuses other data before any work is done.
    let recorded = run.data_source()?;
    let (split, test, source) = load_split(
        args.data.clone().or(recorded.dir),
        args.limit.or(recorded.limit),
    )?;
    let (run, split) = start(run, split, source)?;
    Ok(Some((run, split, test)))
}

/// Where a resumed run starts from, and the damaged states it skipped.
fn say_resumed(run: &Run, dir: &Path) {
    for (path, problem) in run.skipped_states() {
        eprintln!("warning: skipped {}: {problem}", path.display());
    }
    let position = run.trainer().position();
    if position.step == 0 {
        eprintln!(
            "{}: no checkpoint yet; training from the start with its config.toml",
            dir.display()
        );
    } else if !run.skipped_states().is_empty() {
        eprintln!(
            "resuming from the older state: epoch {}, step {}",
            position.epoch, position.step
        );
    }
}

/// The stop flag the first Ctrl-C raises (a checkpoint, then a clean stop); the second exits
/// at once.
fn ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// A diverged run's error with the way out: the last good checkpoint and a lower rate.
fn with_hint(e: cdcgan_train::Error, dir: &Path) -> anyhow::Error {
    if !matches!(e, cdcgan_train::Error::NonFinite { .. }) {
        return e.into();
    }
    let hint = match cdcgan_train::latest_state(dir).ok().flatten() {
        Some(p) => format!(
            "; {} is the last good checkpoint: continue from it with a lower rate, e.g. \
             `cdcgan train --resume {} --lr 1e-4`",
            p.display(),
            dir.display()
        ),
        None => "; no checkpoint was written yet: start again with a lower --lr".into(),
    };
    anyhow::anyhow!("{e}{hint}")
}

/// `progress.gif` (every epoch grid in order) and `losses.png` (D and G loss against steps).
pub fn finish_files(run: &Run) -> Result<(PathBuf, PathBuf)> {
    let gif = run.finish()?;
    let plot = run.dir().join("losses.png");
    crate::plot::loss_plot(&run.dir().join("metrics.csv"), &plot)?;
    Ok((gif, plot))
}
