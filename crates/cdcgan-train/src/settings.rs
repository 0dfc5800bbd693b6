//! The training settings, each declared once: [`TrainConfig`] (what a run trains with),
//! [`Tuning`] (a change of what a schedule may change: a `[[phase]]` of a config file, or the
//! flags of a resumed run) and, with the `clap` feature, [`TrainFlags`] (every setting as an
//! optional command-line flag). Adding a setting is one line in `train_settings!` below, with
//! its doc, which is also its `--help` text.

use serde::{Deserialize, Deserializer, Serialize};

use crate::augment::DiffAugment;
use crate::error::{Error, Result};

/// Declares the training settings in two groups and generates, from the one list:
/// [`TrainConfig`] and its `Default`, [`Tuning`] (an `Option` of each setting of the first
/// group, plus `lr` for both rates) with its `apply`, the flags of the second group, and
/// [`TrainConfig::fixed_changes`].
macro_rules! train_settings {
    (
        scheduled { $( $(#[doc = $sdoc:literal])* $sname:ident : $sty:ty = $sdef:expr, )* }
        fixed { $( $(#[doc = $fdoc:literal])* $fname:ident : $fty:ty = $fdef:expr, )* }
    ) => {
        /// Optimizer and loop settings (the `[train]` table of a config file). The settings
        /// from `lr_g` to `eval_every` may change from one epoch on (a `[[phase]]`) and when a
        /// run is resumed, as may `epochs`; the rest shape the saved state or the data order
        /// and are the run's for life.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct TrainConfig {
            /// Passes over the training set.
            pub epochs: u32,
            $( $(#[doc = $sdoc])* pub $sname: $sty, )*
            $( $(#[doc = $fdoc])* pub $fname: $fty, )*
        }

        impl Default for TrainConfig {
            fn default() -> Self {
                Self { epochs: 20, $( $sname: $sdef, )* $( $fname: $fdef, )* }
            }
        }

        impl TrainConfig {
            /// The settings that are a run's for life in which `other` differs from `self`.
            pub fn fixed_changes(&self, other: &Self) -> Vec<&'static str> {
                let mut changed = Vec::new();
                $( if self.$fname != other.$fname { changed.push(stringify!($fname)); } )*
                changed
            }
        }

        /// A change of the settings a schedule may change; `None` keeps a setting's value.
        /// A `[[phase]]` holds one (beside its `from_epoch`), and so do the flags of a
        /// resumed run.
        #[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[cfg_attr(feature = "clap", derive(clap::Args))]
        pub struct Tuning {
            /// Learning rate of both networks (lr_g and lr_d, when given, win over it).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "clap", arg(long, help_heading = "Training"))]
            pub lr: Option<f64>,
            $(
                $(#[doc = $sdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[cfg_attr(feature = "clap", arg(long, help_heading = "Training"))]
                pub $sname: Option<$sty>,
            )*
        }

        impl Tuning {
            /// The settings a `Tuning` may change, as a config file names them.
            pub const FIELDS: &[&str] = &["lr", $( stringify!($sname), )*];

            /// `train` with this change: `lr` first, then every other setting given.
            pub fn apply(&self, train: TrainConfig) -> TrainConfig {
                let mut t = train;
                if let Some(lr) = self.lr {
                    (t.lr_g, t.lr_d) = (lr, lr);
                }
                $( if let Some(v) = self.$sname { t.$sname = v; } )*
                t
            }
        }

        /// The settings a run keeps for life, as optional flags.
        #[cfg(feature = "clap")]
        #[derive(Debug, Clone, Copy, PartialEq, Default, clap::Args)]
        pub struct FixedFlags {
            $(
                $(#[doc = $fdoc])*
                #[arg(long, help_heading = "Training")]
                pub $fname: Option<$fty>,
            )*
        }

        #[cfg(feature = "clap")]
        impl FixedFlags {
            /// `train` with every flag given.
            pub fn apply(&self, train: TrainConfig) -> TrainConfig {
                let mut t = train;
                $( if let Some(v) = self.$fname { t.$fname = v; } )*
                t
            }
        }
    };
}

train_settings! {
    scheduled {
        /// Generator learning rate.
        lr_g: f64 = 2e-4,
        /// Discriminator learning rate.
        lr_d: f64 = 2e-4,
        /// Discriminator steps per generator step.
        d_steps: u32 = 1,
        /// One-sided label smoothing: real targets are 1 - label_smoothing.
        label_smoothing: f64 = 0.0,
        /// Weight of the mode-seeking term against within-class collapse (MSGAN, Mao et al.
        /// 2019), 0 = off: half of each fake batch repeats the other half's labels with fresh
        /// noise, and G is pushed to keep |G(z1,y) - G(z2,y)| / |z1 - z2| large.
        mode_seeking: f64 = 0.0,
        /// Where the mode-seeking term measures |G(z1,y) - G(z2,y)|: pixels (MSGAN's choice)
        /// or disc-features (D's features).
        mode_seeking_space: ModeSeekingSpace = ModeSeekingSpace::Pixels,
        /// Differentiable augmentation of everything D sees, real and generated, in both
        /// steps (DiffAugment): off, translation, cutout or translation-cutout.
        diff_augment: DiffAugment = DiffAugment::Off,
        /// Clip every discriminator parameter to [-clip, clip] after each D step (the
        /// WGAN-style variant); 0 = off.
        clip: f64 = 0.0,
        /// Strength γ of the R1 gradient penalty on real digits, γ/2·mean|∇ₓD(x,y)|² (the
        /// StyleGAN regulariser beside the BCE loss); 0 = off. Needs a D without BatchNorm
        /// or minibatch std (the `sngan` preset).
        r1: f64 = 0.0,
        /// D steps between R1 penalties (lazy regularisation: the penalty's gradient is scaled
        /// by it).
        r1_every: u32 = 16,
        /// Steps between metrics.csv rows.
        log_every: u64 = 50,
        /// Epochs between quality measurements of the sampling generator (label accuracy,
        /// FID, the narrowest class; 1000 digits, the built-in judge), kept in metrics.csv
        /// and the progress; the best generator by FID is kept as
        /// checkpoints/best.safetensors. 0 = never.
        eval_every: u32 = 1,
    }
    fixed {
        /// Examples per batch (the last partial batch of an epoch is dropped). The default,
        /// 32, reaches 98.3% label accuracy after 3 epochs where 128 reaches 86.7%
        /// (docs/results.md).
        batch_size: usize = 32,
        /// Adam beta1.
        beta1: f64 = 0.5,
        /// Adam beta2.
        beta2: f64 = 0.999,
        /// Adam epsilon.
        eps: f64 = 1e-8,
        /// Decay of the exponential moving average of G's weights; 0 = off.
        ema_decay: f64 = 0.999,
        /// Seed of initialisation, noise and data order.
        seed: u64 = 0,
        /// Columns of the per-epoch sample grid (one row per class).
        grid_per_class: usize = 8,
    }
}

/// A change of the training settings from one epoch on: a `[[phase]]` table of a config
/// file, its `from_epoch` beside the settings it changes (any of [`Tuning::FIELDS`]). The
/// shipped generator's recipe, a constant rate then a cut, is one phase.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Phase {
    /// The first epoch (counted from 1, as the progress shows it) trained with this change.
    pub from_epoch: u32,
    /// What changes.
    #[serde(flatten)]
    pub set: Tuning,
}

impl Phase {
    /// `train` with this phase's changes.
    pub fn apply(&self, train: TrainConfig) -> TrainConfig {
        self.set.apply(train)
    }
}

impl<'de> Deserialize<'de> for Phase {
    /// `from_epoch` and the [`Tuning`] fields in one table; any other key is an error
    /// (serde's `flatten` would drop it silently).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let from_epoch = table
            .remove("from_epoch")
            .ok_or_else(|| D::Error::missing_field("from_epoch"))?;
        let from_epoch = u32::deserialize(from_epoch)
            .map_err(|e| D::Error::custom(format!("from_epoch: {e}")))?;
        let set = Tuning::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(Self { from_epoch, set })
    }
}

/// Every training setting as an optional flag (`cdcgan train` flattens it): `--epochs`, the
/// [`Tuning`] flags and the [`FixedFlags`].
#[cfg(feature = "clap")]
#[derive(Debug, Clone, Copy, PartialEq, Default, clap::Args)]
pub struct TrainFlags {
    /// Passes over the training set.
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<u32>,
    /// What a schedule may change.
    #[command(flatten)]
    pub tuning: Tuning,
    /// What a run keeps for life.
    #[command(flatten)]
    pub fixed: FixedFlags,
}

#[cfg(feature = "clap")]
impl TrainFlags {
    /// `train` with every flag given.
    pub fn apply(&self, train: TrainConfig) -> TrainConfig {
        let mut t = self.fixed.apply(self.tuning.apply(train));
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t
    }
}

impl TrainConfig {
    /// The settings a schedule may change, as `name value` pairs (for a progress line).
    pub fn scheduled_summary(&self) -> String {
        let Ok(serde_json::Value::Object(all)) = serde_json::to_value(self) else {
            return String::new();
        };
        Tuning::FIELDS
            .iter()
            .filter_map(|&name| {
                let value = all.get(name)?;
                Some(match value {
                    serde_json::Value::String(s) => format!("{name} {s}"),
                    v => format!("{name} {v}"),
                })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(Error::Config(m.to_owned()));
        if self.batch_size < 2 {
            return fail("batch_size must be at least 2 (BatchNorm needs a batch)");
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(self.lr_g) && positive(self.lr_d)) {
            return fail("learning rates must be positive");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return fail("beta1 and beta2 must be in [0, 1)");
        }
        if !positive(self.eps) {
            return fail("eps must be positive");
        }
        if self.d_steps == 0 {
            return fail("d_steps must be at least 1");
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return fail("label_smoothing must be in [0, 0.5)");
        }
        if !(self.mode_seeking >= 0.0 && self.mode_seeking.is_finite()) {
            return fail("mode_seeking must be 0 (off) or positive");
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return fail("clip must be 0 (off) or positive");
        }
        if !(self.r1 >= 0.0 && self.r1.is_finite()) {
            return fail("r1 must be 0 (off) or positive");
        }
        if self.r1_every == 0 {
            return fail("r1_every must be at least 1");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return fail("ema_decay must be in [0, 1)");
        }
        if self.epochs == 0 {
            return fail("epochs must be at least 1");
        }
        if self.log_every == 0 || self.grid_per_class == 0 {
            return fail("log_every and grid_per_class must be at least 1");
        }
        if self.grid_per_class > MAX_GRID_PER_CLASS {
            return Err(Error::Config(format!(
                "grid_per_class is {}, at most {MAX_GRID_PER_CLASS} (the epoch grid is drawn in \
                 one pass: {} digits)",
                self.grid_per_class,
                MAX_GRID_PER_CLASS * 10
            )));
        }
        Ok(())
    }
}

/// The most digits per class an epoch grid may show (`grid_per_class`): the grid's digits
/// are generated in one pass, so this bounds its memory (about 100 MB at the default width).
pub const MAX_GRID_PER_CLASS: usize = 100;

/// The space in which the mode-seeking term measures how far apart two images are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeSeekingSpace {
    /// Mean absolute pixel difference (MSGAN).
    #[default]
    Pixels,
    /// Mean absolute difference of D's features (the flattened `conv2` output after BatchNorm
    /// and LeakyReLU, with D's weights frozen), which change with a digit's shape and stroke
    /// more than with single pixels.
    DiscFeatures,
}

impl std::fmt::Display for ModeSeekingSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pixels => "pixels",
            Self::DiscFeatures => "disc-features",
        })
    }
}

impl std::str::FromStr for ModeSeekingSpace {
    type Err = Error;

    /// `pixels` or `disc-features`, read by the same serde names as a config file.
    fn from_str(s: &str) -> Result<Self> {
        use serde::de::IntoDeserializer;
        let text: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            s.into_deserializer();
        Self::deserialize(text).map_err(|e| Error::Config(format!("mode_seeking_space: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_reads_its_epoch_and_tuning_and_names_a_key_it_cannot_change() {
        let phase: Phase = toml::from_str("from_epoch = 3\nlr = 1e-4\nclip = 0.01\n").unwrap();
        assert_eq!(phase.from_epoch, 3);
        let t = phase.apply(TrainConfig::default());
        assert_eq!((t.lr_g, t.lr_d, t.clip), (1e-4, 1e-4, 0.01));
        // Through JSON too (a checkpoint's metadata), and back.
        let json = serde_json::to_string(&phase).unwrap();
        assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase);

        for (text, wanted) in [
            ("from_epoch = 3\nbatch_size = 8\n", "batch_size"),
            ("from_epoch = 3\nepochs = 8\n", "epochs"),
            ("lr = 1e-4\n", "from_epoch"),
            ("from_epoch = -1\n", "from_epoch"),
        ] {
            let err = toml::from_str::<Phase>(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn lr_sets_both_rates_and_the_specific_ones_win() {
        let tuning = Tuning {
            lr: Some(1e-4),
            lr_d: Some(3e-4),
            ..Tuning::default()
        };
        let t = tuning.apply(TrainConfig::default());
        assert_eq!((t.lr_g, t.lr_d), (1e-4, 3e-4));
        assert_eq!(Tuning::default().apply(t), t);
    }

    #[test]
    fn fixed_changes_lists_only_the_settings_a_run_keeps_for_life() {
        let a = TrainConfig::default();
        let b = TrainConfig {
            epochs: 99,
            lr_g: 1.0,
            seed: 7,
            ema_decay: 0.0,
            ..a
        };
        assert_eq!(a.fixed_changes(&b), ["ema_decay", "seed"]);
        assert!(a.fixed_changes(&a).is_empty());
    }
}
