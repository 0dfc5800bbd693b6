//! A run's whole configuration ([`RunConfig`]: model, training settings, schedule), the
//! named [`Preset`]s it starts from, and config files.

use cdcgan_model::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::settings::{Phase, TrainConfig, Tuning};

/// The memory a training run may plan for: [`RunConfig::validate`] refuses a model and batch
/// size whose [`RunConfig::estimated_bytes`] exceed it (at the default widths, batches up to
/// about 4,500).
pub const MEMORY_BUDGET: u64 = 8 << 30;

/// A named recipe a run starts from: `cdcgan train --preset` and a config file's `preset`
/// key; every setting a file or flag leaves out comes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The shipped generator's recipe (docs/results.md, run 63): a projection discriminator
    /// under spectral normalisation with its projection table left free, batch 32, EMA, the
    /// R1 penalty at γ 0.5, 16 epochs with the rate cut to a quarter from epoch 10 and R1 off
    /// from epoch 14.
    #[default]
    Sngan,
    /// The plain conditional DCGAN the project started from: a BatchNorm discriminator
    /// reading one-hot label planes, batch 32, EMA, a constant rate for 20 epochs.
    Dcgan,
}

impl Preset {
    /// Every preset, the default first.
    pub const ALL: [Self; 2] = [Self::Sngan, Self::Dcgan];

    /// The preset's full configuration.
    pub fn config(self) -> RunConfig {
        let plain = RunConfig {
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            phases: Vec::new(),
        };
        match self {
            Self::Dcgan => plain,
            Self::Sngan => RunConfig {
                model: ModelConfig {
                    projection: true,
                    spectral_norm: true,
                    spectral_norm_proj: false,
                    ..plain.model
                },
                train: TrainConfig {
                    epochs: 16,
                    r1: 0.5,
                    ..plain.train
                },
                phases: vec![
                    Phase {
                        from_epoch: 10,
                        set: Tuning {
                            lr: Some(5e-5),
                            ..Tuning::default()
                        },
                    },
                    Phase {
                        from_epoch: 14,
                        set: Tuning {
                            r1: Some(0.0),
                            ..Tuning::default()
                        },
                    },
                ],
            },
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sngan => "sngan",
            Self::Dcgan => "dcgan",
        })
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    /// `sngan` or `dcgan`, the names a config file uses.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| Error::Config(format!("unknown preset `{s}`; expected sngan or dcgan")))
    }
}

/// Everything that defines a run: the model, the training settings and their schedule.
/// The default is [`Preset::default`]'s recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The architecture.
    #[serde(default)]
    pub model: ModelConfig,
    /// The training settings (of the first epoch, then as the phases leave them).
    #[serde(default)]
    pub train: TrainConfig,
    /// Changes of the settings at later epochs, in epoch order (`[[phase]]` in TOML, `phase =
    /// []` for none).
    #[serde(rename = "phase", default)]
    pub phases: Vec<Phase>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Preset::default().config()
    }
}

/// What a config file may hold, parsed straight from the text so that an error points at
/// its line: the preset and partial tables (their missing fields filled later from the
/// preset).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read for its errors only
struct ConfigFile {
    preset: Option<Preset>,
    model: Option<ModelConfig>,
    train: Option<TrainConfig>,
    phase: Option<Vec<Phase>>,
}

/// Writes `over` onto `base`, table by table; any other value replaces the base's.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl RunConfig {
    /// Checks both parts and the schedule: phases in increasing epoch order from epoch 1,
    /// each leaving valid settings.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        check_r1(&self.train, &self.model)?;
        let need = self.estimated_bytes();
        if need > MEMORY_BUDGET {
            return Err(Error::Config(format!(
                "this run would need about {:.1} GiB (gen_width {}, disc_width {}, batch_size \
                 {}), more than the {} GiB budget; choose a smaller batch_size or width",
                need as f64 / f64::from(1u32 << 30),
                self.model.gen_width,
                self.model.disc_width,
                self.train.batch_size,
                MEMORY_BUDGET >> 30
            )));
        }
        validate_phases(&self.phases, self.train, &self.model)
    }

    /// A coarse upper estimate of a run's memory, in bytes: every value of both networks five
    /// times over (weights, gradients, Adam's two moments, the EMA copy), and a batch's
    /// activations three times over (forward, kept for backward, their gradients), f32.
    pub fn estimated_bytes(&self) -> u64 {
        let m = &self.model;
        let (g, d) = (m.gen_width as u64, m.disc_width as u64);
        let (small, large, pixels) = (7 * 7, 14 * 14, 28 * 28);
        // Per image: each layer's output and its normalised/activated copy.
        let generator = 2 * (2 * g * small) + 2 * (g * large) + 2 * pixels;
        // D sees a real and a generated batch.
        let disc = 2 * (2 * (d * large) + 2 * (2 * d * small) + pixels);
        let per_image = 3 * (generator + disc);
        let weights = 5 * m.tensor_values() as u64;
        4 * (weights + (self.train.batch_size as u64).saturating_mul(per_image))
    }

    /// The settings in force after `train` enters `epoch` (counted from 1): those of the
    /// phases starting there applied over it.
    pub fn entering(&self, epoch: u32, train: TrainConfig) -> TrainConfig {
        self.phases
            .iter()
            .filter(|p| p.from_epoch == epoch)
            .fold(train, |t, p| p.apply(t))
    }

    /// The config as TOML, every field written (reading it back with either parser gives
    /// the same config).
    pub fn to_toml(&self) -> String {
        // Every field is a plain number, bool, string or option: serialisation cannot fail.
        // An empty schedule is written `phase = []`, so the default preset's cannot creep back.
        toml::to_string(self).unwrap_or_default()
    }

    /// Parses a config file: the `preset` it names (else the default), with the file's
    /// settings written over it. A `[[phase]]` list replaces the preset's; unknown keys are
    /// errors.
    pub fn from_toml(s: &str) -> Result<Self> {
        let config_err = |e: toml::de::Error| Error::Config(e.to_string());
        let file: ConfigFile = toml::from_str(s).map_err(config_err)?;
        let mut table: toml::Table = s.parse().map_err(config_err)?;
        table.remove("preset");
        let base = file.preset.unwrap_or_default().config();
        let mut merged = toml::Table::try_from(&base).map_err(|e| {
            Error::Config(format!("preset {}: {e}", file.preset.unwrap_or_default()))
        })?;
        merge(&mut merged, table);
        merged.try_into().map_err(config_err)
    }

    /// Parses a config as [`RunConfig::to_toml`] wrote it (a run's `config.toml`): no preset;
    /// a field left out takes its type's default and a missing `phase` means none.
    pub fn from_saved_toml(s: &str) -> Result<Self> {
        toml::from_str(s).map_err(|e| Error::Config(e.to_string()))
    }
}

/// Checks a schedule against the settings it starts from.
fn validate_phases(phases: &[Phase], train: TrainConfig, model: &ModelConfig) -> Result<()> {
    let mut t = train;
    let mut last = 0;
    for p in phases {
        if p.from_epoch <= last {
            return Err(Error::Config(format!(
                "phase from_epoch {} must be at least 1 and after the previous phase's {last}",
                p.from_epoch
            )));
        }
        last = p.from_epoch;
        t = p.apply(t);
        t.validate()
            .and_then(|()| check_r1(&t, model))
            .map_err(|e| match e {
                Error::Config(m) => Error::Config(format!("phase from epoch {last}: {m}")),
                e => e,
            })?;
    }
    Ok(())
}

/// R1 differentiates D per example, so it needs a D whose logit depends on its own example
/// alone: spectral normalisation instead of BatchNorm, no minibatch std.
pub(crate) fn check_r1(train: &TrainConfig, model: &ModelConfig) -> Result<()> {
    if train.r1 > 0.0 && !model.per_example_disc() {
        return Err(Error::Config(
            "r1 needs a discriminator without BatchNorm or minibatch std \
             (spectral_norm = true, minibatch_std = false; the sngan preset); \
             for this one, turn it off with r1 = 0 (--r1 0)"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::DiffAugment;
    use crate::settings::{MAX_GRID_PER_CLASS, ModeSeekingSpace};

    #[test]
    fn toml_round_trip_and_defaults() {
        let mut c = RunConfig::default();
        c.train.clip = 0.01;
        c.train.ema_decay = 0.0;
        let back = RunConfig::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let partial = RunConfig::from_toml("[train]\nepochs = 3\n").unwrap();
        assert_eq!(partial.train.epochs, 3);
        assert_eq!(partial.train.lr_g, 2e-4);
        assert!(RunConfig::from_toml("[train]\nepoch = 3\n").is_err());
    }

    #[test]
    fn phases_round_trip_as_tables_and_apply_only_their_fields() {
        let text = "[train]\nepochs = 19\n\n[[phase]]\nfrom_epoch = 13\nlr = 5e-5\n\n\
                    [[phase]]\nfrom_epoch = 16\nlr_g = 1e-4\nmode_seeking = 0.5\n\
                    mode_seeking_space = \"disc-features\"\ndiff_augment = \"cutout\"\n";
        let c = RunConfig::from_toml(text).unwrap();
        assert_eq!(c.phases.len(), 2);
        c.validate().unwrap();
        assert_eq!(RunConfig::from_toml(&c.to_toml()).unwrap(), c);
        assert!(c.to_toml().contains("[[phase]]"));
        let plain = Preset::Dcgan.config().to_toml();
        assert!(
            plain.contains("phase = []") && !plain.contains("[[phase]]"),
            "{plain}"
        );

        let t = c.entering(13, c.train);
        assert_eq!((t.lr_g, t.lr_d, t.mode_seeking), (5e-5, 5e-5, 0.0));
        let t = c.entering(16, t);
        assert_eq!((t.lr_g, t.lr_d, t.mode_seeking), (1e-4, 5e-5, 0.5));
        assert_eq!(t.mode_seeking_space, ModeSeekingSpace::DiscFeatures);
        assert_eq!(t.diff_augment, DiffAugment::Cutout);
        assert_eq!(t.batch_size, c.train.batch_size);
        assert_eq!(c.entering(14, c.train), c.train);
        assert!(RunConfig::from_toml("[[phase]]\nfrom_epoch = 2\nbatch_size = 8\n").is_err());
    }

    #[test]
    fn files_start_from_their_preset_and_saved_configs_read_back_exactly() {
        // No preset: the default (the shipped recipe), the file's settings over it.
        let c = RunConfig::from_toml("[model]\ngen_width = 96\n").unwrap();
        let sngan = Preset::Sngan.config();
        assert_eq!(c.model.gen_width, 96);
        assert!(c.model.spectral_norm && c.model.projection && !c.model.spectral_norm_proj);
        assert_eq!((c.train, &c.phases), (sngan.train, &sngan.phases));
        assert_eq!(RunConfig::from_toml("").unwrap(), RunConfig::default());

        // The plain DCGAN preset, with a schedule of its own replacing none.
        let c = RunConfig::from_toml("preset = \"dcgan\"\n[train]\nepochs = 4\n").unwrap();
        assert_eq!(c.model, ModelConfig::default());
        assert_eq!((c.train.epochs, c.phases.len()), (4, 0));
        let c = RunConfig::from_toml("[[phase]]\nfrom_epoch = 3\nlr = 1e-4\n").unwrap();
        assert_eq!(c.phases.len(), 1);
        assert_eq!((c.phases[0].from_epoch, c.model), (3, sngan.model));

        // Printed and read back, with either parser, each preset stays itself: an empty
        // schedule is written out, so the default preset's does not creep back.
        for p in Preset::ALL {
            let text = p.config().to_toml();
            assert_eq!(RunConfig::from_toml(&text).unwrap(), p.config(), "{text}");
            assert_eq!(
                RunConfig::from_saved_toml(&text).unwrap(),
                p.config(),
                "{text}"
            );
            assert_eq!(p.to_string().parse::<Preset>().unwrap(), p);
        }
        // A run's config.toml from before presets: no phase key means no phases.
        let old = "[model]\nz_dim = 100\n[train]\nepochs = 2\n";
        assert!(RunConfig::from_saved_toml(old).unwrap().phases.is_empty());

        for (bad, want) in [
            ("preset = \"wgan\"\n", "wgan"),
            ("[model]\nwidth = 3\n", "width"),
            ("[train]\nepochs = \"x\"\n", "line 2"),
        ] {
            let err = RunConfig::from_toml(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert!("gan".parse::<Preset>().is_err());
    }

    #[test]
    fn mode_seeking_space_reads_and_prints_as_in_config_files() {
        for (text, space) in [
            ("pixels", ModeSeekingSpace::Pixels),
            ("disc-features", ModeSeekingSpace::DiscFeatures),
        ] {
            assert_eq!(text.parse::<ModeSeekingSpace>().unwrap(), space);
            assert_eq!(space.to_string(), text);
            let c = RunConfig::from_toml(&format!("[train]\nmode_seeking_space = \"{text}\"\n"));
            assert_eq!(c.unwrap().train.mode_seeking_space, space);
        }
        let err = "features".parse::<ModeSeekingSpace>().unwrap_err();
        assert!(err.to_string().contains("disc-features"), "{err}");
        assert!(RunConfig::from_toml("[train]\nmode_seeking_space = \"dfeat\"\n").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let c = TrainConfig {
            label_smoothing: 0.7,
            ..TrainConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("label_smoothing")
        );
        assert!(TrainConfig::default().validate().is_ok());
        for bad in [
            TrainConfig {
                epochs: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                grid_per_class: MAX_GRID_PER_CLASS + 1,
                ..TrainConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runs_over_the_memory_budget_are_refused_with_the_estimate() {
        let mut c = RunConfig::default();
        c.validate().unwrap();
        // The default run: tens of MB per batch of 32, far below the budget.
        assert!(c.estimated_bytes() < 1 << 30, "{}", c.estimated_bytes());
        c.train.batch_size = 1_000_000;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("GiB") && err.contains("batch_size 1000000"),
            "{err}"
        );
        c.train.batch_size = 32;
        c.model.gen_width = 4096;
        assert!(c.validate().is_err());
    }
}
