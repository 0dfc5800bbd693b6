//! The `dcgan28` generator and discriminator.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cdcgan_model::{Gan, ModelConfig};
//!
//! let gan = Gan::new(ModelConfig::tiny(), 42, &Device::Cpu)?;
//! let labels = Tensor::new(&[3u32, 7], &Device::Cpu)?;
//! let z = Tensor::randn(0f32, 1., (2, gan.config().z_dim), &Device::Cpu)?;
//! let images = gan.generator.forward_t(&z, &labels, false)?; // eval mode
//! assert_eq!(images.dims(), &[2, 1, 28, 28]);
//! let logits = gan.discriminator.forward_t(&images, &labels, false)?;
//! assert_eq!(logits.dims(), &[2]);
//! # Ok::<(), cdcgan_model::Error>(())
//! ```

use candle_core::{DType, Module, ModuleT, Tensor};
use candle_nn::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    Embedding, Linear, VarBuilder,
};
use mnist_data::{IMAGE_SIDE, NUM_CLASSES};

use crate::config::{LabelInput, ModelConfig};
use crate::error::Result;

/// Side of the generator's first feature map, and of the discriminator's last.
const BASE_SIDE: usize = IMAGE_SIDE / 4;

/// `labels` (any integer dtype, `[b]`) as f32 one-hot rows `[b, 10]`.
pub fn one_hot(labels: &Tensor) -> Result<Tensor> {
    let classes = Tensor::arange(0u32, NUM_CLASSES as u32, labels.device())?.unsqueeze(0)?;
    Ok(labels
        .to_dtype(DType::U32)?
        .unsqueeze(1)?
        .broadcast_eq(&classes)?
        .to_dtype(DType::F32)?)
}

fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    let cfg = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    Ok(candle_nn::batch_norm(channels, cfg, vb)?)
}

/// Stride 2, padding 1, kernel 4: halves (conv) or doubles (transposed conv) the side.
const K: usize = 4;

fn conv_cfg() -> Conv2dConfig {
    Conv2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    }
}

fn deconv_cfg() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    }
}

/// G(z, y): noise and a class label to a 28x28 image in `[-1, 1]`.
#[derive(Debug, Clone)]
pub struct Generator {
    embed: Option<Embedding>,
    fc: Linear,
    bn0: BatchNorm,
    deconv1: ConvTranspose2d,
    bn1: BatchNorm,
    deconv2: ConvTranspose2d,
    config: ModelConfig,
}

impl Generator {
    /// Builds the generator's layers under `vb` (conventionally `vb.pp("gen")`).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let w = config.gen_width;
        let embed = match config.label_input {
            LabelInput::OneHot => None,
            LabelInput::Embedding => Some(candle_nn::embedding(
                NUM_CLASSES,
                config.label_dim(),
                vb.pp("embed"),
            )?),
        };
        let fc_in = config.z_dim + config.label_dim();
        Ok(Self {
            embed,
            fc: candle_nn::linear_no_bias(fc_in, 2 * w * BASE_SIDE * BASE_SIDE, vb.pp("fc"))?,
            bn0: bn(2 * w, vb.pp("bn0"))?,
            deconv1: candle_nn::conv_transpose2d_no_bias(
                2 * w,
                w,
                K,
                deconv_cfg(),
                vb.pp("deconv1"),
            )?,
            bn1: bn(w, vb.pp("bn1"))?,
            deconv2: candle_nn::conv_transpose2d(w, 1, K, deconv_cfg(), vb.pp("deconv2"))?,
            config: *config,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Images `[b, 1, 28, 28]` from noise `[b, z_dim]` and labels `[b]`.
    ///
    /// `train` selects batch statistics in BatchNorm (and updates the running ones);
    /// sampling uses `train = false`.
    pub fn forward_t(&self, z: &Tensor, labels: &Tensor, train: bool) -> Result<Tensor> {
        let code = match &self.embed {
            None => one_hot(labels)?,
            Some(e) => e.forward(&labels.to_dtype(DType::U32)?)?,
        };
        let b = z.dim(0)?;
        let x = Tensor::cat(&[z, &code], 1)?;
        let x =
            self.fc
                .forward(&x)?
                .reshape((b, 2 * self.config.gen_width, BASE_SIDE, BASE_SIDE))?;
        let x = self.bn0.forward_t(&x, train)?.relu()?;
        let x = self.deconv1.forward(&x)?;
        let x = self.bn1.forward_t(&x, train)?.relu()?;
        Ok(self.deconv2.forward(&x)?.tanh()?)
    }
}

/// D(x, y): an image and a class label to one logit ("real digit of this class").
#[derive(Debug, Clone)]
pub struct Discriminator {
    embed: Option<Embedding>,
    conv1: Conv2d,
    conv2: Conv2d,
    bn2: BatchNorm,
    fc: Linear,
    config: ModelConfig,
}

impl Discriminator {
    /// Builds the discriminator's layers under `vb` (conventionally `vb.pp("disc")`).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let w = config.disc_width;
        let embed = match config.label_input {
            LabelInput::OneHot => None,
            LabelInput::Embedding => Some(candle_nn::embedding(
                NUM_CLASSES,
                IMAGE_SIDE * IMAGE_SIDE,
                vb.pp("embed"),
            )?),
        };
        Ok(Self {
            embed,
            conv1: candle_nn::conv2d(1 + config.label_planes(), w, K, conv_cfg(), vb.pp("conv1"))?,
            conv2: candle_nn::conv2d_no_bias(w, 2 * w, K, conv_cfg(), vb.pp("conv2"))?,
            bn2: bn(2 * w, vb.pp("bn2"))?,
            fc: candle_nn::linear(2 * w * BASE_SIDE * BASE_SIDE, 1, vb.pp("fc"))?,
            config: *config,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits `[b]` for images `[b, 1, 28, 28]` in `[-1, 1]` and labels `[b]`.
    pub fn forward_t(&self, x: &Tensor, labels: &Tensor, train: bool) -> Result<Tensor> {
        let b = x.dim(0)?;
        let planes = match &self.embed {
            None => one_hot(labels)?
                .reshape((b, NUM_CLASSES, 1, 1))?
                .broadcast_as((b, NUM_CLASSES, IMAGE_SIDE, IMAGE_SIDE))?,
            Some(e) => e
                .forward(&labels.to_dtype(DType::U32)?)?
                .reshape((b, 1, IMAGE_SIDE, IMAGE_SIDE))?,
        };
        let x = Tensor::cat(&[x, &planes.contiguous()?], 1)?;
        let x = candle_nn::ops::leaky_relu(&self.conv1.forward(&x)?, 0.2)?;
        let x = self.bn2.forward_t(&self.conv2.forward(&x)?, train)?;
        let x = candle_nn::ops::leaky_relu(&x, 0.2)?.flatten_from(1)?;
        Ok(self.fc.forward(&x)?.squeeze(1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_hot_rows() {
        let l = Tensor::new(&[0u32, 9, 3], &Device::Cpu).unwrap();
        let oh = one_hot(&l).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(oh[1][9], 1.0);
        assert_eq!(oh[2].iter().sum::<f32>(), 1.0);
        assert_eq!(oh[2][3], 1.0);
    }
}
