//! `cdcgan train`: flags and config file, progress display, Ctrl-C, and the end-of-run files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use cdcgan_model::{Generator, LabelInput};
use cdcgan_train::{
    EpochReport, ModeSeekingSpace, Observer, Outcome, Phase, Preset, Quality, Run, RunConfig,
    StepReport, TrainConfig,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::generate::write_gif;
use crate::watch::LiveJudge;

/// Flags of `cdcgan train`; every knob of the config file has one, and a flag wins over the file.
///
/// Flags that set what a run keeps for life (the model, the optimiser's shape, the seed)
/// conflict with `--resume`, so clap refuses them there, naming the one given.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// MNIST directory (else $MNIST_DIR, else data/mnist; a resumed run reads the directory it
    /// was started with, recorded in RUN_DIR/data-source.toml).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run directory to create.
    #[arg(long, value_name = "RUN_DIR", default_value = "runs/latest")]
    pub out: PathBuf,
    /// Continue the interrupted run in RUN_DIR exactly (its config is used; --epochs may
    /// extend or shorten it; the learning rates, --d-steps, --label-smoothing,
    /// --mode-seeking(-space), --clip and --log-every may change from here on).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "print_config"])]
    pub resume: Option<PathBuf>,
    /// A TOML config file (see --print-config for every field): its `preset` (default sngan)
    /// with the file's settings over it; `[[phase]]` tables change the rates and loss knobs
    /// from a given epoch on, as in configs/batchnorm-projection.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The recipe to start from: sngan (the shipped generator's, the default) or dcgan (the
    /// plain conditional DCGAN); flags change it from there.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["config", "resume"])]
    pub preset: Option<Preset>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress bar or summaries.
    #[arg(long, short)]
    pub quiet: bool,
    /// One JSON object per epoch on stdout (implies no progress bar).
    #[arg(long)]
    pub json: bool,
    /// After each epoch, also say where its time went (steps, batching, logging, grid,
    /// checkpoints, judge); the JSON log always carries it as `time`.
    #[arg(long)]
    pub profile: bool,

    /// Passes over the training set.
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<u32>,
    /// Examples per batch.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub batch_size: Option<usize>,
    /// Learning rate of both networks (see --lr-g, --lr-d).
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f64>,
    /// Generator learning rate.
    #[arg(long, help_heading = "Training")]
    pub lr_g: Option<f64>,
    /// Discriminator learning rate.
    #[arg(long, help_heading = "Training")]
    pub lr_d: Option<f64>,
    /// Adam beta1.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub beta1: Option<f64>,
    /// Adam beta2.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub beta2: Option<f64>,
    /// Adam epsilon.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub eps: Option<f64>,
    /// Discriminator steps per generator step.
    #[arg(long, help_heading = "Training")]
    pub d_steps: Option<u32>,
    /// One-sided label smoothing of real targets.
    #[arg(long, help_heading = "Training")]
    pub label_smoothing: Option<f64>,
    /// Weight of the mode-seeking term against within-class collapse (0 = off).
    #[arg(long, value_name = "W", help_heading = "Training")]
    pub mode_seeking: Option<f64>,
    /// Where the mode-seeking term measures distances: pixels or disc-features.
    #[arg(long, value_name = "SPACE", help_heading = "Training")]
    pub mode_seeking_space: Option<ModeSeekingSpace>,
    /// Clip D's weights to [-C, C] after each D step (0 = off).
    #[arg(long, value_name = "C", help_heading = "Training")]
    pub clip: Option<f64>,
    /// EMA decay of the generator's weights (0 = off).
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub ema_decay: Option<f64>,
    /// Seed of initialisation, noise and data order.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// Steps between metrics.csv rows.
    #[arg(long, help_heading = "Training")]
    pub log_every: Option<u64>,
    /// Epochs between quality measurements (1000 digits, the built-in judge): label accuracy,
    /// FID and the narrowest class in the progress, metrics.csv and the JSON log, and the best
    /// generator by FID kept as checkpoints/best.safetensors (0 = off).
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub eval_every: Option<u32>,
    /// Columns of the per-epoch sample grid.
    #[arg(long, help_heading = "Training", conflicts_with = "resume")]
    pub grid_per_class: Option<usize>,

    /// Noise size.
    #[arg(long, help_heading = "Model", conflicts_with = "resume")]
    pub z_dim: Option<usize>,
    /// Generator base width (channels of its last hidden layer).
    #[arg(long, help_heading = "Model", conflicts_with = "resume")]
    pub gen_width: Option<usize>,
    /// Discriminator base width (channels of its first layer).
    #[arg(long, help_heading = "Model", conflicts_with = "resume")]
    pub disc_width: Option<usize>,
    /// How labels enter the networks: one-hot or embedding.
    #[arg(long, value_parser = ["one-hot", "embedding"], help_heading = "Model", conflicts_with = "resume")]
    pub label_input: Option<String>,
    /// D also scores the label by projection (`--projection false` turns a config's off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Model", conflicts_with = "resume")]
    pub projection: Option<bool>,
    /// G's BatchNorms take a scale and shift per class (`--class-norm false` turns a config's
    /// off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Model", conflicts_with = "resume")]
    pub class_norm: Option<bool>,
    /// D's last layer also sees the batch's feature spread (minibatch standard deviation;
    /// `--minibatch-std false` turns a config's off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Model", conflicts_with = "resume")]
    pub minibatch_std: Option<bool>,
    /// D's weights are spectrally normalised and its BatchNorm dropped, as in SN-GAN
    /// (`--spectral-norm false` turns a config's off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Model", conflicts_with = "resume")]
    pub spectral_norm: Option<bool>,
    /// With --spectral-norm and --projection, normalise the projection table too (default
    /// true; `--spectral-norm-proj false` leaves it free, which holds the label better).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Model", conflicts_with = "resume")]
    pub spectral_norm_proj: Option<bool>,
    /// Use at most this many training images (quick experiments and tests; a resumed run
    /// keeps the limit it was started with).
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub limit: Option<usize>,
}

impl TrainArgs {
    /// The config file (or defaults) with the flags applied on top.
    pub fn effective_config(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                RunConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => self.preset.unwrap_or_default().config(),
        };
        let t = &mut c.train;
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { t.$field = v; })* };
        }
        set!(
            epochs,
            batch_size,
            beta1,
            beta2,
            eps,
            d_steps,
            label_smoothing,
            mode_seeking,
            mode_seeking_space,
            clip,
            ema_decay,
            seed,
            log_every,
            grid_per_class,
            eval_every
        );
        if let Some(lr) = self.lr {
            (t.lr_g, t.lr_d) = (lr, lr);
        }
        set!(lr_g, lr_d);
        let m = &mut c.model;
        if let Some(v) = self.z_dim {
            m.z_dim = v;
        }
        if let Some(v) = self.gen_width {
            m.gen_width = v;
        }
        if let Some(v) = self.disc_width {
            m.disc_width = v;
        }
        if let Some(v) = &self.label_input {
            m.label_input = if v == "embedding" {
                LabelInput::Embedding
            } else {
                LabelInput::OneHot
            };
        }
        if let Some(v) = self.projection {
            m.projection = v;
        }
        if let Some(v) = self.class_norm {
            m.class_norm = v;
        }
        if let Some(v) = self.minibatch_std {
            m.minibatch_std = v;
        }
        if let Some(v) = self.spectral_norm {
            m.spectral_norm = v;
        }
        if let Some(v) = self.spectral_norm_proj {
            m.spectral_norm_proj = v;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Where a run's training data came from, kept in `RUN_DIR/data-source.toml` so that
/// `--resume` finds it again from any working directory.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct DataSource {
    /// The MNIST directory, absolute.
    dir: Option<PathBuf>,
    /// `--limit`, if one was given.
    limit: Option<usize>,
}

impl DataSource {
    const FILE: &str = "data-source.toml";

    /// The recorded source of the run in `run_dir`, if it has one.
    fn read(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(Self::FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let source = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        Ok(Some(source))
    }

    fn write(&self, run_dir: &Path) -> Result<()> {
        let text = toml::to_string(self).context("cannot write the data source as TOML")?;
        mnist_data::write_atomic(&run_dir.join(Self::FILE), text.as_bytes())?;
        Ok(())
    }
}

/// Whether training ended or was interrupted (exit code 130).
pub enum Ended {
    /// All epochs done.
    Finished,
    /// Stopped by Ctrl-C after saving a checkpoint.
    Interrupted,
}

/// The training split from `data` (else $MNIST_DIR, else data/mnist), cut to `limit`, the
/// test split (the live judge's reference), and where they came from.
fn load_split(
    data: Option<PathBuf>,
    limit: Option<usize>,
) -> Result<(mnist_data::Split, mnist_data::Split, DataSource)> {
    let mnist = crate::load_mnist(data.as_deref())?;
    let split = match limit {
        Some(n) => mnist.train.take(n),
        None => mnist.train,
    };
    let dir = mnist_data::resolve_dir(data.as_deref());
    let source = DataSource {
        dir: Some(std::fs::canonicalize(&dir).unwrap_or(dir)),
        limit,
    };
    Ok((split, mnist.test, source))
}

/// Binds `run` to its data (refusing other data than it was trained on) and records where the
/// data came from.
fn start(
    run: Run,
    split: mnist_data::Split,
    source: DataSource,
) -> Result<(Run, mnist_data::Split)> {
    run.bind_data(&split)?;
    source.write(run.dir())?;
    Ok((run, split))
}

/// Runs `cdcgan train`.
pub fn train(args: &TrainArgs) -> Result<Ended> {
    if args.print_config {
        print!("{}", args.effective_config()?.to_toml());
        return Ok(Ended::Finished);
    }
    let dev = Device::Cpu;
    let (mut run, split, test) = match &args.resume {
        Some(dir) => {
            // The run's own config is used (clap refuses the flags that would change it); the
            // schedule and the loss knobs may change.
            let mut run = Run::resume(dir, &dev)?;
            // What may change on resume is what a phase may change, plus the length and the
            // log interval.
            let change = Phase {
                from_epoch: run.trainer().position().epoch + 1,
                lr: args.lr,
                lr_g: args.lr_g,
                lr_d: args.lr_d,
                d_steps: args.d_steps,
                label_smoothing: args.label_smoothing,
                mode_seeking: args.mode_seeking,
                mode_seeking_space: args.mode_seeking_space,
                clip: args.clip,
            };
            let mut t = change.apply(run.trainer().config().train);
            t.epochs = args.epochs.unwrap_or(t.epochs);
            t.log_every = args.log_every.unwrap_or(t.log_every);
            t.eval_every = args.eval_every.unwrap_or(t.eval_every);
            let done = run.trainer().position().epoch;
            if done >= t.epochs {
                // Nothing to train: say so rather than load the data for no step, and leave
                // the run's files (config.toml included) as they are.
                if !args.quiet {
                    eprintln!(
                        "{} has completed {done} epochs: nothing to train; `--epochs {}` \
                         would continue it",
                        dir.display(),
                        done + 1
                    );
                }
                return Ok(Ended::Finished);
            }
            if t != run.trainer().config().train {
                run.retune(t)?;
            }
            if !args.quiet {
                for (path, problem) in run.skipped_states() {
                    eprintln!("warning: skipped {}: {problem}", path.display());
                }
                if run.trainer().position().step == 0 {
                    eprintln!(
                        "{}: no checkpoint yet; training from the start with its config.toml",
                        dir.display()
                    );
                } else if !run.skipped_states().is_empty() {
                    eprintln!(
                        "resuming from the older state: epoch {}, step {}",
                        run.trainer().position().epoch,
                        run.trainer().position().step
                    );
                }
            }
            // A resumed run reads the data it was started on unless told otherwise;
            // `bind_data` refuses other data before any work is done.
            let recorded = DataSource::read(run.dir())?.unwrap_or_default();
            let (split, test, source) = load_split(
                args.data.clone().or(recorded.dir),
                args.limit.or(recorded.limit),
            )?;
            let (run, split) = start(run, split, source)?;
            (run, split, test)
        }
        None => {
            // Everything that can refuse the start is checked before the run directory is
            // made, so a failed start leaves nothing that blocks `--out` afterwards.
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
            let run = Run::create(&args.out, config, &dev)?;
            let (run, split) = start(run, split, source)?;
            (run, split, test)
        }
    };
    let judge = if run.trainer().config().train.eval_every > 0 {
        // Training does not depend on it: without a judge it goes on unmeasured.
        LiveJudge::new(&split, &test)
            .map_err(|e| eprintln!("warning: quality will not be measured: {e:#}"))
            .ok()
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // The second Ctrl-C exits at once; the first asks for a checkpoint and a clean stop.
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let mut display = Display::new(args, stop.clone(), judge);
    let dir = run.dir().to_owned();
    let outcome = run.train(&split, &mut display).map_err(|e| {
        if matches!(e, cdcgan_train::Error::NonFinite { .. }) {
            let last = cdcgan_train::latest_state(&dir).ok().flatten();
            let hint = match last {
                Some(p) => format!(
                    "; {} is the last good checkpoint: continue from it with a lower rate, \
                     e.g. `cdcgan train --resume {} --lr 1e-4`",
                    p.display(),
                    dir.display()
                ),
                None => "; no checkpoint was written yet: start again with a lower --lr".into(),
            };
            anyhow::anyhow!("{e}{hint}")
        } else {
            e.into()
        }
    })?;
    display.bar.finish_and_clear();
    match outcome {
        Outcome::Finished => {
            let (gif, plot) = finish_files(&dir)?;
            if !args.quiet && !args.json {
                eprintln!(
                    "done: {} and {} in {}",
                    gif.display(),
                    plot.display(),
                    dir.display()
                );
            }
            Ok(Ended::Finished)
        }
        Outcome::Interrupted(path) => {
            eprintln!(
                "interrupted: saved {}; continue with `cdcgan train --resume {}`",
                path.display(),
                dir.display()
            );
            Ok(Ended::Interrupted)
        }
    }
}

/// Progress bar, per-epoch summaries or JSON lines, and the stop flag.
struct Display {
    bar: ProgressBar,
    quiet: bool,
    json: bool,
    profile: bool,
    stop: Arc<AtomicBool>,
    judge: Option<LiveJudge>,
}

impl Display {
    fn new(args: &TrainArgs, stop: Arc<AtomicBool>, judge: Option<LiveJudge>) -> Self {
        let bar = if args.quiet || args.json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        };
        Self {
            bar,
            quiet: args.quiet,
            json: args.json,
            profile: args.profile,
            stop,
            judge,
        }
    }

    /// A line on stderr above the bar; also when stderr is no terminal (a log file), where
    /// the bar is hidden and its own `println` would drop the line.
    fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

impl Observer for Display {
    fn on_step(&mut self, r: &StepReport) {
        self.bar.set_length(r.batches as u64);
        self.bar.set_position(r.batch as u64);
        self.bar.set_prefix(format!("{}/{}", r.epoch, r.epochs));
        self.bar.set_message(format!(
            "{:.0} img/s  d_loss {:.3}  g_loss {:.3}",
            r.images_per_sec, r.stats.d_loss, r.stats.g_loss
        ));
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        if self.json {
            let line = serde_json::json!({
                "epoch": r.epoch, "epochs": r.epochs, "step": r.step,
                "d_loss": r.mean.d_loss, "g_loss": r.mean.g_loss,
                "d_real": r.mean.d_real, "d_fake": r.mean.d_fake,
                "images_per_sec": r.images_per_sec, "seconds": r.seconds,
                "grid": r.grid, "checkpoint": r.checkpoint,
                "quality": r.quality, "best_epoch": r.best.map(|(e, _)| e), "time": r.time,
            });
            println!("{line}");
        } else if !self.quiet {
            let quality = r.quality.map_or(String::new(), |q| {
                format!(
                    "\n  judged: label accuracy {:.2}%, FID {:.2} (real {:.2}, {:.2}x), narrowest \
                     class {} at {:.3}{}",
                    100.0 * q.accuracy,
                    q.fid,
                    q.real_fid,
                    q.fid / q.real_fid,
                    q.narrowest_class,
                    q.diversity_min,
                    if r.best.is_some_and(|(e, _)| e == r.epoch) {
                        "; best so far"
                    } else {
                        ""
                    }
                )
            });
            let time = if self.profile {
                let t = &r.time;
                format!(
                    "\n  time: steps {:.1}s, batching {:.1}s, logging {:.1}s, grid {:.1}s, \
                     checkpoints {:.1}s, judge {:.1}s",
                    t.steps, t.data, t.logging, t.grid, t.checkpoints, t.judge
                )
            } else {
                String::new()
            };
            self.say(&format!(
                "epoch {}/{}: d_loss {:.3} g_loss {:.3} D(x) {:.2} D(G(z)) {:.2}, {:.0} img/s, {:.0}s; {}{quality}{time}",
                r.epoch,
                r.epochs,
                r.mean.d_loss,
                r.mean.g_loss,
                r.mean.d_real,
                r.mean.d_fake,
                r.images_per_sec,
                r.seconds,
                r.grid.display()
            ));
        }
        self.bar.reset();
    }

    fn on_phase(&mut self, epoch: u32, t: &TrainConfig) {
        if !self.quiet && !self.json {
            self.say(&format!(
                "epoch {epoch}: phase: lr_g {:e} lr_d {:e}, d_steps {}, label smoothing {}, \
                 mode seeking {} ({}), clip {}",
                t.lr_g,
                t.lr_d,
                t.d_steps,
                t.label_smoothing,
                t.mode_seeking,
                t.mode_seeking_space,
                t.clip
            ));
        }
    }

    fn judge(&mut self, epoch: u32, generator: &Generator) -> Option<Quality> {
        let judge = self.judge.as_ref()?;
        match judge.measure(generator) {
            Ok(q) => Some(q),
            Err(e) => {
                // Training goes on; only the measurement is lost.
                self.say(&format!(
                    "warning: epoch {epoch} could not be judged: {e:#}"
                ));
                None
            }
        }
    }

    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// `progress.gif` (every epoch grid in order) and `losses.png` (D and G loss against steps).
pub fn finish_files(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let samples = dir.join("samples");
    let mut grids: Vec<PathBuf> = std::fs::read_dir(&samples)
        .with_context(|| format!("cannot list {}", samples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-") && n.ends_with(".png"))
        })
        .collect();
    grids.sort();
    if grids.is_empty() {
        bail!("no epoch grids in {}", samples.display());
    }
    let frames = grids
        .iter()
        .map(|p| {
            image::open(p)
                .map(|i| i.to_luma8())
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let gif = dir.join("progress.gif");
    write_gif(&frames, 500, &gif)?;
    let plot = dir.join("losses.png");
    crate::plot::loss_plot(&dir.join("metrics.csv"), &plot)?;
    Ok((gif, plot))
}
