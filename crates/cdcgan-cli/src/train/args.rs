//! The flags of `cdcgan train` and the config they make.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cdcgan_model::LabelInput;
use cdcgan_train::{DiffAugment, ModeSeekingSpace, Preset, RunConfig};
use clap::Args;

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
    /// Differentiable augmentation of what D sees, real and generated (DiffAugment): off,
    /// translation, cutout or translation-cutout.
    #[arg(long, value_name = "POLICY", help_heading = "Training")]
    pub diff_augment: Option<DiffAugment>,
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
        // Each flag given replaces its field of the file's or preset's settings.
        macro_rules! set {
            ($to:expr; $($field:ident),*) => { $(if let Some(v) = self.$field { $to.$field = v; })* };
        }
        let t = &mut c.train;
        set!(t; epochs, batch_size, beta1, beta2, eps, d_steps, label_smoothing, mode_seeking);
        set!(t; mode_seeking_space, diff_augment, clip, ema_decay, seed, log_every, grid_per_class, eval_every);
        if let Some(lr) = self.lr {
            (t.lr_g, t.lr_d) = (lr, lr);
        }
        set!(t; lr_g, lr_d);
        let m = &mut c.model;
        set!(m; z_dim, gen_width, disc_width, projection, class_norm, minibatch_std);
        set!(m; spectral_norm, spectral_norm_proj);
        if let Some(v) = &self.label_input {
            m.label_input = if v == "embedding" {
                LabelInput::Embedding
            } else {
                LabelInput::OneHot
            };
        }
        c.validate()?;
        Ok(c)
    }
}
