//! Adversarial training for the `cdcgan-model` conditional DCGAN.
//!
//! ```no_run
//! use candle_core::Device;
//! use cdcgan_train::{Run, RunConfig};
//!
//! let mnist = mnist_data::Mnist::load("data/mnist")?;
//! let mut config = RunConfig::default();
//! config.train.epochs = 1;
//! let mut run = Run::create("runs/first", config, &Device::Cpu)?;
//! run.train(&mnist.train, &mut ())?; // writes checkpoints, metrics.csv, samples/
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Trainer`]: the state (networks, [`cdcgan_nn::Adam`] optimizers, EMA, noise stream) and one step:
//!   D on real (target 1, or `1 - label_smoothing`) and detached fakes (target 0), optional
//!   clipping of D, then G with the non-saturating loss (plus, optionally, the mode-seeking
//!   term over same-class pairs, in pixels or in D's features); losses by [`bce_with_logits`];
//!   optionally the R1 penalty on real digits every few D steps, computed from first-order
//!   passes only (central differences along ∇ₓD).
//! - [`Run`]: a run directory; [`Run::resume`] continues bit-for-bit where it stopped.
//! - [`RunConfig`]: model, settings and [`Phase`]s (settings changed from an epoch on).
//! - [`Observer`]: progress callbacks; the library prints nothing.

mod augment;
mod config;
mod data;
mod error;
mod grid;
mod loss;
mod r1;
mod run;
mod settings;
mod trainer;

pub use augment::DiffAugment;
pub use config::{MEMORY_BUDGET, Preset, RunConfig};
pub use data::{DataSource, data_identity};
pub use error::{Error, Result};
pub use grid::{GRID_PAD, GridLayout, MAX_GRID_PIXELS, grid_image, image_size, save_gif, save_png};
pub use loss::bce_with_logits;
pub use run::{
    BEST_FILE, EpochReport, EpochTimes, META_QUALITY, Observer, Outcome, PROGRESS_GIF, Quality,
    Run, StepReport, epoch_generator_path, epoch_generators, latest_state,
};
#[cfg(feature = "clap")]
pub use settings::{FixedFlags, TrainFlags};
pub use settings::{MAX_GRID_PER_CLASS, ModeSeekingSpace, Phase, TrainConfig, Tuning};
pub use trainer::{META_KIND, META_TRAIN, Position, StepStats, Trainer};
