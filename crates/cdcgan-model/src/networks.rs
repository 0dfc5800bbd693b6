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

use crate::config::{IMAGE_SIDE, NUM_CLASSES};
use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use crate::config::{LabelInput, ModelConfig};
use crate::error::Result;
use cdcgan_nn::kernels::{self, Activation};
use cdcgan_nn::layers::{
    self, BatchNorm, ClassBatchNorm, Conv2d, ConvConfig, ConvTranspose2d, SpectralNorm,
};

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

/// BatchNorm's eps and momentum: PyTorch's defaults.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    Ok(layers::batch_norm(channels, BN_EPS, BN_MOMENTUM, vb)?)
}

/// A generator BatchNorm: one affine for all classes, or one per class (`class_norm`).
#[derive(Debug, Clone)]
enum GenNorm {
    Shared(BatchNorm),
    PerClass(ClassBatchNorm),
}

impl GenNorm {
    fn new(config: &ModelConfig, channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(if config.class_norm {
            Self::PerClass(layers::class_batch_norm(
                NUM_CLASSES,
                channels,
                BN_EPS,
                BN_MOMENTUM,
                vb,
            )?)
        } else {
            Self::Shared(bn(channels, vb)?)
        })
    }

    fn forward_act(&self, x: &Tensor, labels: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match self {
            Self::Shared(n) => n.forward_act(x, train, Activation::Relu)?,
            Self::PerClass(n) => n.forward_act(x, labels, train, Activation::Relu)?,
        })
    }
}

const LEAKY: Activation = Activation::LeakyRelu(0.2);

/// Stride 2, padding 1, kernel 4: halves (conv) or doubles (transposed conv) the side.
const K: usize = 4;

const HALVE: ConvConfig = ConvConfig {
    stride: 2,
    padding: 1,
};

/// The minibatch standard deviation of features `h [b, f]` as one more feature `[b, 1]`:
/// `mean_f sqrt(var_batch(h[:, f]) + 1e-8)`, the same for every example of the batch.
fn minibatch_std(h: &Tensor) -> Result<Tensor> {
    let b = h.dim(0)?;
    let centred = h.broadcast_sub(&h.mean_keepdim(0)?)?;
    let std = (centred.sqr()?.mean_keepdim(0)? + 1e-8)?
        .sqrt()?
        .mean_all()?;
    Ok(std.reshape((1, 1))?.broadcast_as((b, 1))?)
}

/// G(z, y): noise and a class label to a 28x28 image in `[-1, 1]`.
#[derive(Debug, Clone)]
pub struct Generator {
    embed: Option<Embedding>,
    fc: Linear,
    bn0: GenNorm,
    deconv1: ConvTranspose2d,
    bn1: GenNorm,
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
            bn0: GenNorm::new(config, 2 * w, vb.pp("bn0"))?,
            deconv1: layers::conv_transpose2d_no_bias(2 * w, w, K, HALVE, vb.pp("deconv1"))?,
            bn1: GenNorm::new(config, w, vb.pp("bn1"))?,
            deconv2: layers::conv_transpose2d(w, 1, K, HALVE, vb.pp("deconv2"))?,
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
        let x = self.bn0.forward_act(&x, labels, train)?;
        let x = self.deconv1.forward(&x)?;
        let x = self.bn1.forward_act(&x, labels, train)?;
        Ok(self.deconv2.forward(&x)?.tanh()?)
    }
}

/// The spectral normalisers of D's weights (`spectral_norm`).
#[derive(Debug, Clone)]
struct DiscSpectralNorms {
    conv1: SpectralNorm,
    conv2: SpectralNorm,
    fc: SpectralNorm,
    proj: Option<SpectralNorm>,
}

/// D(x, y): an image and a class label to one logit ("real digit of this class").
#[derive(Debug, Clone)]
pub struct Discriminator {
    embed: Option<Embedding>,
    proj: Option<Embedding>,
    conv1: Conv2d,
    conv2: Conv2d,
    /// BatchNorm after `conv2`; absent with spectral normalisation.
    bn2: Option<BatchNorm>,
    sn: Option<DiscSpectralNorms>,
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
        let features = 2 * w * BASE_SIDE * BASE_SIDE;
        let proj = if config.projection {
            Some(candle_nn::embedding(NUM_CLASSES, features, vb.pp("proj"))?)
        } else {
            None
        };
        let (conv2, bn2, sn) = if config.spectral_norm {
            let sn = DiscSpectralNorms {
                conv1: layers::spectral_norm(w, vb.pp("conv1"))?,
                conv2: layers::spectral_norm(2 * w, vb.pp("conv2"))?,
                fc: layers::spectral_norm(1, vb.pp("fc"))?,
                proj: match proj {
                    Some(_) if config.spectral_norm_proj => {
                        Some(layers::spectral_norm(NUM_CLASSES, vb.pp("proj"))?)
                    }
                    _ => None,
                },
            };
            let conv2 = layers::conv2d(w, 2 * w, K, HALVE, vb.pp("conv2"))?;
            (conv2, None, Some(sn))
        } else {
            let conv2 = layers::conv2d_no_bias(w, 2 * w, K, HALVE, vb.pp("conv2"))?;
            (conv2, Some(bn(2 * w, vb.pp("bn2"))?), None)
        };
        Ok(Self {
            embed,
            proj,
            conv1: layers::conv2d(1 + config.label_planes(), w, K, HALVE, vb.pp("conv1"))?,
            conv2,
            bn2,
            sn,
            fc: candle_nn::linear(features + usize::from(config.minibatch_std), 1, vb.pp("fc"))?,
            config: *config,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether each logit depends on its own example alone (no BatchNorm and no minibatch
    /// standard deviation), so reals and fakes may share one pass.
    pub fn per_example(&self) -> bool {
        self.config.per_example_disc()
    }

    /// A view whose parameters are cut from autograd, for the generator's step: gradients
    /// still flow through it to the images, but none are computed for D's own weights
    /// (which that step would throw away). BatchNorm running statistics stay shared.
    pub fn frozen(&self) -> Self {
        let detach = |e: &Embedding| Embedding::new(e.embeddings().detach(), e.hidden_size());
        Self {
            embed: self.embed.as_ref().map(detach),
            proj: self.proj.as_ref().map(detach),
            conv1: self.conv1.detached(),
            conv2: self.conv2.detached(),
            bn2: self.bn2.as_ref().map(BatchNorm::detached),
            sn: self.sn.clone(),
            fc: Linear::new(
                self.fc.weight().detach(),
                self.fc.bias().map(Tensor::detach),
            ),
            config: self.config,
        }
    }

    /// Logits `[b]` for images `[b, 1, 28, 28]` in `[-1, 1]` and labels `[b]`.
    ///
    /// The first layer sees the image stacked with label planes. Its response to the label
    /// planes depends on the class alone, so it is computed once per class (a batch of ten)
    /// and gathered by label: exactly `conv1(cat(x, planes))` without building the planes.
    /// With `projection`, the logit adds the label's row of `proj` dotted with the features;
    /// with `minibatch_std`, `fc` also sees the batch's feature spread, so the logits of a
    /// batch depend on the whole batch (as BatchNorm's already do in training mode). With
    /// `spectral_norm`, every weight is divided by its estimated spectral norm, and `train`
    /// also moves each estimate one power-iteration step.
    pub fn forward_t(&self, x: &Tensor, labels: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_features_t(x, labels, train)?.0)
    }

    /// Like [`Discriminator::forward_t`], also returning the features `[b, 2·width·7·7]` the
    /// logit is read from (after the last BatchNorm, if any, and LeakyReLU).
    pub fn forward_features_t(
        &self,
        x: &Tensor,
        labels: &Tensor,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let labels = labels.to_dtype(DType::U32)?;
        let w = &self.weight(self.conv1.weight(), |sn| Some(&sn.conv1), train)?;
        let planes = w.dim(1)? - 1;
        let stride = self.conv1.config().stride;
        let padding = self.conv1.config().padding;
        let image_part = kernels::conv2d(x, &w.narrow(1, 0, 1)?, stride, padding)?;
        let per_class = kernels::conv2d(
            &self.label_planes()?,
            &w.narrow(1, 1, planes)?,
            stride,
            padding,
        )?;
        let per_class = layers::bias_act(&per_class, self.conv1.bias(), Activation::Identity)?;
        let h = kernels::gather_add_act(&image_part, &per_class, &labels, LEAKY)?;
        let conv2 = Conv2d::new(
            self.weight(self.conv2.weight(), |sn| Some(&sn.conv2), train)?,
            self.conv2.bias().cloned(),
            self.conv2.config(),
        );
        let h = match &self.bn2 {
            Some(bn2) => bn2.forward_act(&conv2.forward(&h)?, train, LEAKY)?,
            None => conv2.forward_act(&h, LEAKY)?,
        }
        .flatten_from(1)?;
        let fc = Linear::new(
            self.weight(self.fc.weight(), |sn| Some(&sn.fc), train)?,
            self.fc.bias().cloned(),
        );
        let logit = if self.config.minibatch_std {
            fc.forward(&Tensor::cat(&[&h, &minibatch_std(&h)?], 1)?)?
        } else {
            fc.forward(&h)?
        }
        .squeeze(1)?;
        let logit = match &self.proj {
            Some(proj) => {
                let table = self.weight(proj.embeddings(), |sn| sn.proj.as_ref(), train)?;
                (logit + (table.embedding(&labels)? * &h)?.sum(1)?)?
            }
            None => logit,
        };
        Ok((logit, h))
    }

    /// `weight`, spectrally normalised by the normaliser `pick` selects when D has one for it.
    fn weight(
        &self,
        weight: &Tensor,
        pick: impl Fn(&DiscSpectralNorms) -> Option<&SpectralNorm>,
        train: bool,
    ) -> Result<Tensor> {
        Ok(match self.sn.as_ref().and_then(pick) {
            Some(sn) => sn.normalise(weight, train)?,
            None => weight.clone(),
        })
    }

    /// The label planes of each class, `[10, planes, 28, 28]`: one-hot planes, or the
    /// learned embedding as one plane.
    fn label_planes(&self) -> Result<Tensor> {
        let device = self.conv1.weight().device();
        let classes = Tensor::arange(0u32, NUM_CLASSES as u32, device)?;
        Ok(match &self.embed {
            None => one_hot(&classes)?
                .reshape((NUM_CLASSES, NUM_CLASSES, 1, 1))?
                .broadcast_as((NUM_CLASSES, NUM_CLASSES, IMAGE_SIDE, IMAGE_SIDE))?
                .contiguous()?,
            Some(e) => e
                .embeddings()
                .reshape((NUM_CLASSES, 1, IMAGE_SIDE, IMAGE_SIDE))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn minibatch_std_is_the_mean_feature_std_for_every_example() {
        // Feature 0: 0, 2 (std 1); feature 1: 2, 6 (std 2); mean 1.5.
        let h = Tensor::new(&[[0f32, 2.], [2., 6.]], &Device::Cpu).unwrap();
        let s = minibatch_std(&h).unwrap();
        assert_eq!(s.dims(), &[2, 1]);
        for v in s.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            assert!((v - 1.5).abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn one_hot_rows() {
        let l = Tensor::new(&[0u32, 9, 3], &Device::Cpu).unwrap();
        let oh = one_hot(&l).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(oh[1][9], 1.0);
        assert_eq!(oh[2].iter().sum::<f32>(), 1.0);
        assert_eq!(oh[2][3], 1.0);
    }
}
