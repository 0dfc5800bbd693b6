//! A training run in a directory: the loop over epochs, checkpoints, metrics and sample grids.
//!
//! ```text
//! RUN_DIR/
//!   config.toml                     the RunConfig
//!   metrics.csv                     epoch,step,d_loss,g_loss,d_real,d_fake,images_per_sec,
//!                                   accuracy,fid,diversity_min (an epoch's last row, when judged)
//!   samples/epoch-001.png           fixed-noise grid, one row per class
//!   progress.gif                    the grids of every epoch ([`Run::finish`])
//!   checkpoints/state-00000469.safetensors   full training state (the last two are kept)
//!   checkpoints/latest              name of the newest complete state file
//!   checkpoints/gen-epoch-001.safetensors    generator alone (EMA when on), one per epoch
//!   checkpoints/best.safetensors    the judged generator with the lowest FID so far
//!   data.toml                       size and hash of the training split it is trained on,
//!                                   and where it was read from
//!   lock                            pid of the process training here (an OS file lock)
//! ```
//!
//! Every file is written to a temporary name, fsynced and renamed; a state checkpoint is
//! complete before `latest` names it, and the one before it is kept. A process killed at
//! any moment leaves a run that [`Run::resume`] continues from the last complete state.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use cdcgan_model::{Checkpoint, Generator, noise};
use mnist_data::{Batcher, NUM_CLASSES, Split};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::RunConfig;
use crate::data::{DataRecord, DataSource, data_identity};
use crate::error::{Error, Result};
use crate::grid::{grid_image, save_gif, save_png};
use crate::settings::TrainConfig;
use crate::trainer::{Position, StepStats, Trainer};

const CONFIG_FILE: &str = "config.toml";
const METRICS_FILE: &str = "metrics.csv";
const METRICS_HEADER: &str =
    "epoch,step,d_loss,g_loss,d_real,d_fake,images_per_sec,accuracy,fid,diversity_min";
/// The generator with the best FID so far, in `checkpoints/`.
pub const BEST_FILE: &str = "best.safetensors";
/// Metadata key of a judged generator's [`Quality`] (JSON).
pub const META_QUALITY: &str = cdcgan_model::meta::QUALITY;
const LATEST: &str = "latest";
const LOCK_FILE: &str = "lock";
const SAMPLES_DIR: &str = "samples";
/// The end-of-run animation of the epoch grids ([`Run::finish`]).
pub const PROGRESS_GIF: &str = "progress.gif";
/// Full-state checkpoints kept (the newest and the one before it).
const KEEP_STATES: usize = 2;

/// Progress of one logging interval (also passed to [`Observer::on_step`] every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The epoch under way, from 1.
    pub epoch: u32,
    /// Total epochs of the run.
    pub epochs: u32,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Generator steps taken in all.
    pub step: u64,
    /// This step's losses and D outputs.
    pub stats: StepStats,
    /// Training speed over the epoch so far.
    pub images_per_sec: f64,
}

/// Summary of a finished epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// The epoch just finished, from 1.
    pub epoch: u32,
    /// Total epochs of the run.
    pub epochs: u32,
    /// Generator steps taken in all.
    pub step: u64,
    /// Means over the epoch's steps.
    pub mean: StepStats,
    /// Training speed over the epoch.
    pub images_per_sec: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// The epoch's sample grid.
    pub grid: PathBuf,
    /// The full-state checkpoint written.
    pub checkpoint: PathBuf,
    /// The sampling generator's quality after this epoch, if it was judged.
    pub quality: Option<Quality>,
    /// The epoch and quality of the best generator by FID so far (`checkpoints/best`).
    pub best: Option<(u32, Quality)>,
    /// Where this process's share of the epoch's wall time went.
    pub time: EpochTimes,
}

/// Seconds an epoch spent in each of its parts. `steps`, `data` and `logging` make up the
/// loop over batches ([`EpochReport::seconds`]); the grid, the files and the judge come after.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct EpochTimes {
    /// Training steps (forward, backward, Adam, EMA, spectral-norm power iterations).
    pub steps: f64,
    /// Making batches (shuffled pixels to tensors).
    pub data: f64,
    /// metrics.csv rows and the observer's per-step work (the progress bar).
    pub logging: f64,
    /// The epoch's sample grid.
    pub grid: f64,
    /// The epoch's generator file, its last metrics row and the full-state checkpoint.
    pub checkpoints: f64,
    /// The observer's quality measurement and keeping the best generator.
    pub judge: f64,
}

/// Seconds since `clock`, which restarts now.
fn lap(clock: &mut Instant) -> f64 {
    let now = Instant::now();
    let secs = now.duration_since(*clock).as_secs_f64();
    *clock = now;
    secs
}

/// How good a generator's digits are, as an [`Observer::judge`] measures them. A value the
/// judge could not measure is NaN (JSON `null`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    /// Share of the digits the judge reads as the class they were drawn for (0..1).
    #[serde(deserialize_with = "null_as_nan")]
    pub accuracy: f64,
    /// Fréchet distance to real digits in the judge's features (lower is better).
    #[serde(deserialize_with = "null_as_nan")]
    pub fid: f64,
    /// The same FID for real training digits of the same count: the floor to read `fid` by.
    #[serde(deserialize_with = "null_as_nan")]
    pub real_fid: f64,
    /// The lowest per-class diversity ratio (1 = as varied as real digits).
    #[serde(deserialize_with = "null_as_nan")]
    pub diversity_min: f64,
    /// The class with that ratio.
    pub narrowest_class: u8,
}

/// How [`Run::train`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch is done.
    Finished,
    /// The observer asked to stop; the state was saved to this checkpoint.
    Interrupted(PathBuf),
}

/// Reads JSON's `null` (what serde_json writes for NaN) back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize as _;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Receives progress; the library itself prints nothing.
pub trait Observer {
    /// After every step.
    fn on_step(&mut self, _report: &StepReport) {}
    /// After every epoch, once its checkpoint and grid are written.
    fn on_epoch(&mut self, _report: &EpochReport) {}
    /// When a `[[phase]]` of the config changes the settings, as `epoch` (from 1) starts.
    fn on_phase(&mut self, _epoch: u32, _train: &TrainConfig) {}
    /// Measures the sampling generator after `epoch` (every `eval_every` epochs); `None`
    /// when this observer has no judge. The library has none: it measures nothing itself.
    fn judge(&mut self, _epoch: u32, _generator: &Generator) -> Option<Quality> {
        None
    }
    /// Asked after every step; `true` saves a checkpoint and ends [`Run::train`].
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
impl Observer for () {}

/// A training run bound to its directory.
/// Holds the run directory's lock for as long as the [`Run`] lives.
#[derive(Debug)]
pub struct Run {
    dir: PathBuf,
    trainer: Trainer,
    /// The running sums of the epoch under way and of the metrics row under way, saved with
    /// the state, so an epoch interrupted and resumed reports what an unbroken one would.
    sums: Sums,
    /// State files that failed to load on resume, newest first, with the reason.
    skipped: Vec<(PathBuf, String)>,
    _lock: fs::File,
}

impl Run {
    /// Starts a new run in `dir` (created if needed); refuses a directory holding a run.
    pub fn create(dir: impl AsRef<Path>, config: RunConfig, device: &Device) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let trainer = Trainer::new(config, device)?;
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let lock = lock_run(&dir)?;
        if dir.join(CONFIG_FILE).exists() {
            return Err(Error::RunExists(dir));
        }
        for sub in [SAMPLES_DIR, "checkpoints"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|source| Error::Io { path: p, source })?;
        }
        let metrics = dir.join(METRICS_FILE);
        cdcgan_nn::file::write_atomic(&metrics, format!("{METRICS_HEADER}\n").as_bytes())?;
        // Written last: its presence marks a run that can be resumed.
        cdcgan_nn::file::write_atomic(
            &dir.join(CONFIG_FILE),
            trainer.config().to_toml().as_bytes(),
        )?;
        Ok(Self {
            dir,
            trainer,
            sums: Sums::default(),
            skipped: Vec::new(),
            _lock: lock,
        })
    }

    /// Reopens the run in `dir` at its latest complete checkpoint, or from the start with its
    /// `config.toml` if it was stopped before its first checkpoint. Leftover temporary files
    /// of a killed process are removed.
    pub fn resume(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        if !dir.join(CONFIG_FILE).is_file() {
            return Err(Error::NothingToResume(dir));
        }
        let lock = lock_run(&dir)?;
        for sub in ["", SAMPLES_DIR, "checkpoints"] {
            remove_temporaries(&dir.join(sub));
        }
        // The newest state that loads; one that fails (a bad checksum, a truncated file) is
        // skipped for the older one kept beside it, and reported by `skipped_states`.
        let mut skipped = Vec::new();
        let mut loaded = None;
        for path in state_files(&dir)? {
            match Checkpoint::load(&path, device) {
                Ok(ckpt) => {
                    loaded = Some(ckpt);
                    break;
                }
                Err(e) => skipped.push((path, e.to_string())),
            }
        }
        let (trainer, sums) = match loaded {
            Some(ckpt) => (
                Trainer::from_checkpoint(&ckpt, device)?,
                Sums::from_checkpoint(&ckpt)?,
            ),
            None if !skipped.is_empty() => {
                // Every state is damaged: refuse rather than train from scratch.
                let (path, problem) = skipped.swap_remove(0);
                return Err(Error::Checkpoint {
                    origin: path.display().to_string(),
                    problem: format!("{problem}; no older state loads either"),
                });
            }
            None => {
                let path = dir.join(CONFIG_FILE);
                let text = fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let config = RunConfig::from_saved_toml(&text).map_err(|e| Error::Checkpoint {
                    origin: path.display().to_string(),
                    problem: e.to_string(),
                })?;
                (Trainer::new(config, device)?, Sums::default())
            }
        };
        truncate_metrics(&dir.join(METRICS_FILE), trainer.position().step)?;
        Ok(Self {
            dir,
            trainer,
            sums,
            skipped,
            _lock: lock,
        })
    }

    /// The state files [`Run::resume`] could not load (newest first, with the reason) before
    /// it found one that loads.
    pub fn skipped_states(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Continues under other training settings from here on (see [`Trainer::retune`] for
    /// what may change: the epochs, learning rates and loss knobs), recorded in `config.toml`
    /// and in later checkpoints. Resuming a diverged run from its last good checkpoint with a
    /// lower rate is the usual way out; lower rates for the last epochs the usual way in.
    pub fn retune(&mut self, train: TrainConfig) -> Result<()> {
        self.trainer.retune(train)?;
        let text = self.trainer.config().to_toml();
        cdcgan_nn::file::write_atomic(&self.dir.join(CONFIG_FILE), text.as_bytes())?;
        Ok(())
    }

    /// The training state.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// Binds the run to its training data: records [`data_identity`] of `split` in
    /// `data.toml` the first time, and refuses a split that differs from the recorded one
    /// afterwards, since resuming on other data would not continue the run exactly.
    /// [`Run::train`] calls it; call it first to check the data before anything else.
    pub fn bind_data(&self, split: &Split) -> Result<()> {
        let mut record = DataRecord::read(&self.dir)?;
        let given = data_identity(split);
        match record.identity {
            Some(recorded) if recorded == given => Ok(()),
            Some(recorded) => Err(Error::DataChanged {
                dir: self.dir.clone(),
                recorded,
                given,
            }),
            None => {
                record.identity = Some(given);
                record.write(&self.dir)
            }
        }
    }

    /// Where the run's data was read from, as [`Run::record_source`] left it (nothing
    /// recorded: the default).
    pub fn data_source(&self) -> Result<DataSource> {
        Ok(DataRecord::read(&self.dir)?.source)
    }

    /// Records where the run's data is read from, beside its identity in `data.toml`.
    pub fn record_source(&self, source: &DataSource) -> Result<()> {
        let mut record = DataRecord::read(&self.dir)?;
        if record.source != *source {
            record.source = source.clone();
            record.write(&self.dir)?;
        }
        Ok(())
    }

    /// The end-of-run animation: every epoch's sample grid, in order, as
    /// `RUN_DIR/progress.gif` (half a second a frame). Returns its path.
    pub fn finish(&self) -> Result<PathBuf> {
        let samples = self.dir.join(SAMPLES_DIR);
        let io = |path: &Path, source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut grids: Vec<PathBuf> = fs::read_dir(&samples)
            .map_err(|e| io(&samples, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("epoch-") && n.ends_with(".png"))
            })
            .collect();
        grids.sort();
        if grids.is_empty() {
            return Err(io(
                &samples,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no epoch grids"),
            ));
        }
        let frames = grids
            .iter()
            .map(|p| {
                image::open(p)
                    .map(|i| i.to_luma8())
                    .map_err(|e| io(p, std::io::Error::other(e)))
            })
            .collect::<Result<Vec<_>>>()?;
        let gif = self.dir.join(PROGRESS_GIF);
        save_gif(&frames, 500, &gif)?;
        Ok(gif)
    }

    /// Trains on `split` until the configured epochs are done or `observer` asks to stop.
    /// Refuses a split other than the one the run was trained on so far ([`Run::bind_data`]).
    pub fn train(&mut self, split: &Split, observer: &mut dyn Observer) -> Result<Outcome> {
        self.bind_data(split)?;
        let t = self.trainer.config().train;
        let device = self.trainer.device().clone();
        let batcher = Batcher::new(split, t.batch_size)?
            .seed(t.seed)
            .drop_last(true)
            .device(&device);
        let batches = batcher.batches_per_epoch();
        if batches == 0 {
            return Err(Error::TooLittleData {
                len: split.len(),
                batch_size: t.batch_size,
            });
        }
        while self.trainer.position().epoch < t.epochs {
            let Position { epoch, batch, .. } = self.trainer.position();
            if batch == 0 {
                // A phase starts with its epoch; a run stopped inside one resumes under it.
                let now = self.trainer.config().train;
                let next = self.trainer.config().entering(epoch + 1, now);
                if next != now {
                    self.trainer.retune(next)?;
                    observer.on_phase(epoch + 1, &next);
                }
            }
            if batch == 0 {
                self.sums.epoch = Interval::default();
            }
            let started = Instant::now();
            let mut last = None;
            let mut time = EpochTimes::default();
            let mut clock = Instant::now();
            for (i, item) in batcher.epoch_from(u64::from(epoch), batch).enumerate() {
                let (images, labels) = item?;
                time.data += lap(&mut clock);
                let stats = self.trainer.step(&images, &labels)?;
                time.steps += lap(&mut clock);
                self.trainer.position_mut().batch = batch + i + 1;
                self.sums.log.add(&stats);
                self.sums.epoch.add(&stats);
                let done = (i + 1) * t.batch_size;
                let report = StepReport {
                    epoch: epoch + 1,
                    epochs: t.epochs,
                    batch: batch + i + 1,
                    batches,
                    step: self.trainer.position().step,
                    stats,
                    images_per_sec: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
                };
                // The epoch's last row waits for the epoch's quality, below.
                if report.step.is_multiple_of(t.log_every) && report.batch < batches {
                    self.append_metrics(&report, None)?;
                }
                if report.batch == batches {
                    last = Some(report);
                }
                observer.on_step(&report);
                if report.batch < batches && observer.should_stop() {
                    return Ok(Outcome::Interrupted(self.save_state()?));
                }
                time.logging += lap(&mut clock);
            }
            let seconds = started.elapsed().as_secs_f64();
            let pos = self.trainer.position_mut();
            pos.epoch += 1;
            pos.batch = 0;
            let grid = self.write_grid(epoch + 1)?;
            time.grid = lap(&mut clock);
            let gen_path = epoch_generator_path(&self.dir, epoch + 1);
            let generator = self.trainer.generator_checkpoint();
            generator.save(&gen_path, candle_core::DType::F32)?;
            let judge_now = t.eval_every > 0 && (epoch + 1).is_multiple_of(t.eval_every);
            time.checkpoints = lap(&mut clock);
            let quality = if judge_now {
                observer.judge(epoch + 1, self.trainer.sampling_generator())
            } else {
                None
            };
            if let Some(q) = quality {
                self.keep_if_best(epoch + 1, q, generator)?;
            }
            time.judge = lap(&mut clock);
            if let Some(last) = &last {
                self.append_metrics(last, quality.as_ref())?;
            }
            let checkpoint = self.save_state()?;
            time.checkpoints += lap(&mut clock);
            let report = EpochReport {
                epoch: epoch + 1,
                epochs: t.epochs,
                step: self.trainer.position().step,
                mean: self.sums.epoch.mean(),
                // This process's share of the epoch (all of it unless resumed inside it).
                images_per_sec: ((batches - batch) * t.batch_size) as f64 / seconds.max(1e-9),
                seconds,
                grid,
                checkpoint,
                quality,
                best: self.sums.best,
                time,
            };
            observer.on_epoch(&report);
            if self.trainer.position().epoch < t.epochs && observer.should_stop() {
                return Ok(Outcome::Interrupted(report.checkpoint));
            }
        }
        Ok(Outcome::Finished)
    }

    /// The fixed noise and labels of the per-epoch grids: `grid_per_class` per class, row by
    /// row, the same every epoch and on resume.
    pub fn fixed_inputs(&self) -> Result<(Tensor, Tensor)> {
        let cfg = self.trainer.config();
        let per_class = cfg.train.grid_per_class;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.seed);
        rng.set_stream(2);
        let n = NUM_CLASSES * per_class;
        let z = noise(&mut rng, n, cfg.model.z_dim, self.trainer.device())?;
        let labels: Vec<u32> = (0..n).map(|i| (i / per_class) as u32).collect();
        Ok((z, Tensor::from_vec(labels, n, self.trainer.device())?))
    }

    fn write_grid(&self, epoch: u32) -> Result<PathBuf> {
        let (z, labels) = self.fixed_inputs()?;
        let images = self
            .trainer
            .sampling_generator()
            .forward_t(&z, &labels, false)?;
        let img = grid_image(&images, self.trainer.config().train.grid_per_class, 1)?;
        let path = self
            .dir
            .join(SAMPLES_DIR)
            .join(format!("epoch-{epoch:03}.png"));
        save_png(&img, &path)?;
        Ok(path)
    }

    /// Writes the full state, then the `latest` pointer, then prunes old states.
    fn save_state(&self) -> Result<PathBuf> {
        let ckdir = self.dir.join("checkpoints");
        let name = format!("state-{:08}.safetensors", self.trainer.position().step);
        let path = ckdir.join(&name);
        let mut ckpt = self.trainer.checkpoint()?;
        self.sums.record(&mut ckpt)?;
        ckpt.save(&path, candle_core::DType::F32)?;
        cdcgan_nn::file::write_atomic(&ckdir.join(LATEST), name.as_bytes())?;
        let mut states = list_states(&ckdir)?;
        states.sort();
        let excess = states.len().saturating_sub(KEEP_STATES);
        for old in &states[..excess] {
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Keeps `generator` as `checkpoints/best.safetensors` if its FID is the lowest so far.
    fn keep_if_best(&mut self, epoch: u32, q: Quality, mut generator: Checkpoint) -> Result<()> {
        if self.sums.best.is_some_and(|(_, best)| best.fid <= q.fid) || !q.fid.is_finite() {
            return Ok(());
        }
        let json = serde_json::to_string(&q)
            .map_err(|e| Error::Config(format!("cannot serialise the quality: {e}")))?;
        generator.metadata.insert(META_QUALITY.into(), json);
        let path = self.dir.join("checkpoints").join(BEST_FILE);
        generator.save(&path, candle_core::DType::F32)?;
        self.sums.best = Some((epoch, q));
        Ok(())
    }

    fn append_metrics(&mut self, report: &StepReport, quality: Option<&Quality>) -> Result<()> {
        let m = self.sums.log.mean();
        let quality = quality.map_or(",,".to_owned(), |q| {
            format!("{:.6},{:.6},{:.6}", q.accuracy, q.fid, q.diversity_min)
        });
        let line = format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.1},{quality}\n",
            report.epoch,
            report.step,
            m.d_loss,
            m.g_loss,
            m.d_real,
            m.d_fake,
            report.images_per_sec
        );
        self.sums.log = Interval::default();
        let path = self.dir.join(METRICS_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)
    }
}

/// `checkpoints/gen-epoch-NNN.safetensors` of the run in `dir`: its generator after `epoch`.
pub fn epoch_generator_path(dir: &Path, epoch: u32) -> PathBuf {
    dir.join("checkpoints")
        .join(format!("gen-epoch-{epoch:03}.safetensors"))
}

/// The per-epoch generator files of the run in `dir`, by epoch (none yet: empty).
pub fn epoch_generators(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let ckpt_dir = dir.join("checkpoints");
    let entries = fs::read_dir(&ckpt_dir).map_err(|source| Error::Io {
        path: ckpt_dir.clone(),
        source,
    })?;
    let mut epochs: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let n = name
                .strip_prefix("gen-epoch-")?
                .strip_suffix(".safetensors")?;
            Some((n.parse().ok()?, p))
        })
        .collect();
    epochs.sort();
    Ok(epochs)
}

/// The newest full-state checkpoint of the run in `dir`, if any: the one `checkpoints/latest`
/// names, or, where that pointer is missing or names a missing file, the newest
/// `state-*.safetensors` there.
pub fn latest_state(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(state_files(dir)?.into_iter().next())
}

/// The run's state files, newest first: the one `checkpoints/latest` names (if it exists),
/// then every `state-*.safetensors` by descending step.
fn state_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let ckdir = dir.join("checkpoints");
    let pointer = ckdir.join(LATEST);
    let mut files = Vec::new();
    match fs::read_to_string(&pointer) {
        Ok(name) => {
            let name = name.trim();
            if name.is_empty() || name.contains(['/', '\\']) {
                return Err(Error::Checkpoint {
                    origin: pointer.display().to_string(),
                    problem: "malformed pointer".into(),
                });
            }
            let named = ckdir.join(name);
            if named.is_file() {
                files.push(named);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                path: pointer,
                source,
            });
        }
    }
    let mut states = list_states(&ckdir)?;
    states.sort();
    states.reverse();
    for state in states {
        if !files.contains(&state) {
            files.push(state);
        }
    }
    Ok(files)
}

/// The `state-*.safetensors` files in `ckdir` (none if it does not exist).
fn list_states(ckdir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(ckdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: ckdir.to_owned(),
                source,
            });
        }
    };
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state-") && n.ends_with(".safetensors"))
        })
        .collect())
}

/// Takes the run directory's lock (an OS lock on `lock`, released when the process ends,
/// however it ends) and writes our pid into it. A lock file left by a dead process is simply
/// taken over; a live owner is named in the error.
fn lock_run(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            return Err(Error::Locked {
                dir: dir.to_owned(),
                pid: if pid.is_empty() { "unknown" } else { pid }.to_owned(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io)?;
    Ok(file)
}

/// Removes the temporary files a killed process left in `dir`: `.NAME.XXXXXX` from
/// [`cdcgan_nn::file::write_atomic`] (and `.NAME.PID.tmp` from earlier versions). Only called
/// while holding the run's lock, on directories only the run writes.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let temporary = name
            .strip_prefix('.')
            .is_some_and(|rest| rest.len() > 1 && rest[1..].contains('.'));
        if temporary && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Drops metrics rows past `step` (written after the checkpoint a run resumes from).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut out = format!("{METRICS_HEADER}\n");
    for line in text.lines().skip(1) {
        let row_step = line.split(',').nth(1).and_then(|s| s.parse::<u64>().ok());
        if row_step.is_some_and(|s| s <= step) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(cdcgan_nn::file::write_atomic(path, out.as_bytes())?)
}

/// Running sums of step statistics.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Interval {
    n: usize,
    sum: StepStats,
    /// Steps that carried an R1 penalty (absent in states written before R1).
    #[serde(default)]
    r1_n: usize,
}

/// The sums a run carries across steps: the epoch's, and the metrics row's.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Sums {
    epoch: Interval,
    log: Interval,
    /// The best judged epoch so far and its quality (absent in states written before).
    #[serde(default)]
    best: Option<(u32, Quality)>,
}

impl Sums {
    /// Metadata key of the sums in a full-state checkpoint.
    const KEY: &str = cdcgan_model::meta::RUN_SUMS;

    /// Stores the sums in `ckpt`'s metadata (f64 values print and parse back exactly).
    fn record(&self, ckpt: &mut Checkpoint) -> Result<()> {
        let json = serde_json::to_string(self)
            .map_err(|e| Error::Config(format!("cannot serialise the running sums: {e}")))?;
        ckpt.metadata.insert(Self::KEY.into(), json);
        Ok(())
    }

    /// The sums stored in `ckpt`; none (a state written before they were kept) reads as zero.
    fn from_checkpoint(ckpt: &Checkpoint) -> Result<Self> {
        match ckpt.metadata.get(Self::KEY) {
            None => Ok(Self::default()),
            Some(json) => serde_json::from_str(json).map_err(|e| Error::Checkpoint {
                origin: Self::KEY.into(),
                problem: format!("unreadable running sums: {e}"),
            }),
        }
    }
}

impl Interval {
    fn add(&mut self, s: &StepStats) {
        self.n += 1;
        self.sum.d_loss += s.d_loss;
        self.sum.g_loss += s.g_loss;
        self.sum.d_real += s.d_real;
        self.sum.d_fake += s.d_fake;
        if let Some(r1) = s.r1 {
            self.r1_n += 1;
            self.sum.r1 = Some(self.sum.r1.unwrap_or(0.0) + r1);
        }
    }

    fn mean(&self) -> StepStats {
        let n = self.n.max(1) as f64;
        StepStats {
            d_loss: self.sum.d_loss / n,
            g_loss: self.sum.g_loss / n,
            d_real: self.sum.d_real / n,
            d_fake: self.sum.d_fake / n,
            r1: self.sum.r1.map(|sum| sum / self.r1_n.max(1) as f64),
        }
    }
}
