//! The model configuration: one serde struct shared by code, config files, checkpoints and
//! (with the `clap` feature) command-line flags.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The side of the square images the networks make and read (MNIST's 28).
pub const IMAGE_SIDE: usize = 28;
/// The number of classes the networks are conditioned on (MNIST's ten digits).
pub const NUM_CLASSES: usize = 10;

/// The only architecture family this crate builds: 28x28, one channel, ten classes.
pub const ARCH: &str = "dcgan28";

/// How the class label enters the networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LabelInput {
    /// G: `concat(z, onehot(y))`; D: ten one-hot planes beside the image.
    #[default]
    OneHot,
    /// G: `concat(z, embed(y))` with a learned 10-d embedding; D: one learned 28x28 plane.
    Embedding,
}

/// Declares the architecture's knobs once: [`ModelConfig`] and, with the `clap` feature,
/// [`ModelFlags`] (each knob as an optional flag, its doc the `--help` text). A knob may carry
/// extra clap arguments in `#[flag(...)]`.
macro_rules! model_knobs {
    ( $( $(#[doc = $doc:literal])* $(#[flag($($flag:tt)*)])? $name:ident : $ty:ty, )* ) => {
        /// The knobs of the `dcgan28` architecture (the `[model]` table of a config file).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ModelConfig {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        /// Every [`ModelConfig`] knob as an optional flag, for command-line front ends.
        #[cfg(feature = "clap")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args)]
        pub struct ModelFlags {
            $(
                $(#[doc = $doc])*
                #[arg(long, help_heading = "Model" $(, $($flag)*)?)]
                pub $name: Option<$ty>,
            )*
        }

        #[cfg(feature = "clap")]
        impl ModelFlags {
            /// `model` with every flag given.
            pub fn apply(&self, model: ModelConfig) -> ModelConfig {
                let mut m = model;
                $( if let Some(v) = self.$name { m.$name = v; } )*
                m
            }
        }
    };
}

model_knobs! {
    /// Dimension of the noise vector z.
    z_dim: usize,
    /// Generator width: `deconv1` outputs this many channels, `fc` twice as many at 7x7.
    gen_width: usize,
    /// Discriminator width: `conv1` outputs this many channels, `conv2` twice as many.
    disc_width: usize,
    /// How the label enters both networks: one-hot or embedding.
    label_input: LabelInput,
    /// D also scores the label by projection (Miyato & Koyama 2018): its logit gains
    /// `embed(y) · features`, a learned 10-row table over the flattened `conv2` features.
    #[flag(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    projection: bool,
    /// G's BatchNorms take their scale and shift from the label (class-conditional
    /// BatchNorm): their `weight` and `bias` are `[10, channels]` tables.
    #[flag(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    class_norm: bool,
    /// D's last layer also sees the minibatch standard deviation (Karras et al. 2018): the
    /// std over the batch of each `conv2` feature, averaged, as one more input of `fc`, so D
    /// can tell a batch short of variety from a real one.
    #[flag(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    minibatch_std: bool,
    /// D's weights (`conv1`, `conv2`, `fc`, and `proj` with `projection` unless
    /// `spectral_norm_proj` is false) are spectrally normalised (Miyato et al. 2018), and D
    /// drops its BatchNorm for a bias on `conv2`, as in SN-GAN: each layer is then
    /// 1-Lipschitz, which keeps D's gradients to G informative.
    #[flag(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    spectral_norm: bool,
    /// With `spectral_norm` and `projection`, `proj` is normalised too (the default, as in
    /// Miyato & Koyama 2018); `false` leaves the label table free to outgrow the image term,
    /// which holds the label better (docs/results.md, run 37).
    #[flag(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    spectral_norm_proj: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::dcgan28()
    }
}

impl ModelConfig {
    /// The default architecture: z 100, G 256→128→1 channels, D 64→128 channels.
    pub const fn dcgan28() -> Self {
        Self {
            z_dim: 100,
            gen_width: 128,
            disc_width: 64,
            label_input: LabelInput::OneHot,
            projection: false,
            class_norm: false,
            minibatch_std: false,
            spectral_norm: false,
            spectral_norm_proj: true,
        }
    }

    /// A tiny variant (a few thousand parameters) for fast tests.
    pub const fn tiny() -> Self {
        Self {
            z_dim: 8,
            gen_width: 4,
            disc_width: 4,
            label_input: LabelInput::OneHot,
            projection: false,
            class_norm: false,
            minibatch_std: false,
            spectral_norm: false,
            spectral_norm_proj: true,
        }
    }

    /// Whether each discriminator logit depends on its own example alone: spectral
    /// normalisation instead of BatchNorm, and no minibatch standard deviation.
    pub fn per_example_disc(&self) -> bool {
        self.spectral_norm && !self.minibatch_std
    }

    /// Checks that every size is usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("{what} must be between 1 and 4096")));
        if !(1..=4096).contains(&self.z_dim) {
            return bad("z_dim");
        }
        if !(1..=4096).contains(&self.gen_width) {
            return bad("gen_width");
        }
        if !(1..=4096).contains(&self.disc_width) {
            return bad("disc_width");
        }
        Ok(())
    }

    /// Values (parameters and BatchNorm statistics) of the generator and the discriminator
    /// of this configuration; bounds what a checkpoint of it may hold.
    pub fn tensor_values(&self) -> usize {
        let (z, g, d) = (self.z_dim, self.gen_width, self.disc_width);
        let side2 = 7 * 7;
        let classes = NUM_CLASSES;
        let (g_embed, d_embed) = match self.label_input {
            LabelInput::OneHot => (0, 0),
            LabelInput::Embedding => (classes * self.label_dim(), classes * 28 * 28),
        };
        // Running mean and variance, then the affine: one row, or one per class.
        let affine_rows = if self.class_norm { classes } else { 1 };
        let g_norm = |c: usize| (2 + 2 * affine_rows) * c;
        let generator = g_embed
            + (z + self.label_dim()) * 2 * g * side2
            + g_norm(2 * g)
            + 2 * g * g * 16
            + g_norm(g)
            + g * 16
            + 1;
        let d_proj = if self.projection {
            classes * 2 * d * side2
        } else {
            0
        };
        // BatchNorm after conv2 (four vectors), or with spectral normalisation a bias on conv2
        // and one `sn_u` per normalised weight (rows: conv1 d, conv2 2d, fc 1, proj 10).
        let (d_norm, d_sn) = if self.spectral_norm {
            let proj_rows = if self.projection && self.spectral_norm_proj {
                classes
            } else {
                0
            };
            (2 * d, d + 2 * d + 1 + proj_rows)
        } else {
            (4 * 2 * d, 0)
        };
        let discriminator = d_embed
            + d_proj
            + d * (1 + self.label_planes()) * 16
            + d
            + 2 * d * d * 16
            + d_norm
            + d_sn
            + 2 * d * side2
            + usize::from(self.minibatch_std)
            + 1;
        generator + discriminator
    }

    /// Width of the label code fed to the generator (and of the embedding).
    pub(crate) fn label_dim(&self) -> usize {
        NUM_CLASSES
    }

    /// Label channels beside the image at the discriminator's input.
    pub(crate) fn label_planes(&self) -> usize {
        match self.label_input {
            LabelInput::OneHot => NUM_CLASSES,
            LabelInput::Embedding => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_and_rejects_unknown_fields() {
        let c = ModelConfig {
            label_input: LabelInput::Embedding,
            ..ModelConfig::tiny()
        };
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"embedding\""), "{s}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), c);
        assert!(serde_json::from_str::<ModelConfig>(r#"{"zdim": 3}"#).is_err());
        assert_eq!(
            serde_json::from_str::<ModelConfig>("{}").unwrap(),
            ModelConfig::dcgan28()
        );
    }

    #[test]
    fn tensor_values_counts_every_tensor() {
        let mut embedding = ModelConfig::tiny();
        embedding.label_input = LabelInput::Embedding;
        let projection = ModelConfig {
            projection: true,
            ..ModelConfig::tiny()
        };
        let class_norm = ModelConfig {
            class_norm: true,
            ..ModelConfig::tiny()
        };
        let minibatch_std = ModelConfig {
            minibatch_std: true,
            ..ModelConfig::tiny()
        };
        let spectral_norm = ModelConfig {
            spectral_norm: true,
            ..ModelConfig::tiny()
        };
        let spectral_projection = ModelConfig {
            projection: true,
            ..spectral_norm
        };
        let free_projection = ModelConfig {
            spectral_norm_proj: false,
            ..spectral_projection
        };
        for c in [
            ModelConfig::dcgan28(),
            ModelConfig::tiny(),
            embedding,
            projection,
            class_norm,
            minibatch_std,
            spectral_norm,
            spectral_projection,
            free_projection,
        ] {
            let gan = crate::Gan::new(c, 0, &candle_core::Device::Cpu).unwrap();
            let n: usize = gan.all_vars().iter().map(|(_, v)| v.elem_count()).sum();
            assert_eq!(c.tensor_values(), n, "{c:?}");
        }
    }

    #[test]
    fn validate_rejects_zero_sizes() {
        assert!(ModelConfig::dcgan28().validate().is_ok());
        let c = ModelConfig {
            gen_width: 0,
            ..ModelConfig::tiny()
        };
        assert!(c.validate().unwrap_err().to_string().contains("gen_width"));
    }
}
