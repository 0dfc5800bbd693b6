//! Convolution and BatchNorm layers on the fast kernels of [`crate::kernels`], shaped like
//! candle-nn's.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use cdcgan_model::layers::{conv2d, conv_transpose2d, ConvConfig};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let cfg = ConvConfig { stride: 2, padding: 1 };
//! let down = conv2d(1, 8, 4, cfg, vb.pp("down"))?;
//! let up = conv_transpose2d(8, 1, 4, cfg, vb.pp("up"))?;
//! let x = Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu)?;
//! let h = down.forward(&x)?;
//! assert_eq!(h.dims(), &[3, 8, 14, 14]);
//! assert_eq!(up.forward(&h)?.dims(), &[3, 1, 28, 28]);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Weights use PyTorch's layouts and names (`weight`, `bias`): `[out, in, k, k]` for a
//! convolution, `[in, out, k, k]` for a transposed one.

use candle_core::{Module, ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::kernels::{self, Activation};

/// Stride and padding of a square convolution (no dilation, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvConfig {
    /// Step between windows (conv) or between input pixels in the output (transposed).
    pub stride: usize,
    /// Zero padding on each side (conv) or cropped from each side (transposed).
    pub padding: usize,
}

impl Default for ConvConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
        }
    }
}

/// A 2-d convolution: `y = conv(x, weight) + bias`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvConfig,
}

impl Conv2d {
    /// A layer from its weight `[out, in, k, k]` and optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: ConvConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The weight `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride and padding.
    pub fn config(&self) -> ConvConfig {
        self.config
    }

    /// The same layer with its weights cut from autograd (gradients stop at it).
    pub fn detached(&self) -> Self {
        Self::new(
            self.weight.detach(),
            self.bias.as_ref().map(Tensor::detach),
            self.config,
        )
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = kernels::conv2d(x, &self.weight, self.config.stride, self.config.padding)?;
        add_bias(y, self.bias.as_ref())
    }
}

/// A 2-d transposed convolution: `y = conv_transpose(x, weight) + bias`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvConfig,
}

impl ConvTranspose2d {
    /// A layer from its weight `[in, out, k, k]` and optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: ConvConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The weight `[in, out, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ConvConfig { stride, padding } = self.config;
        let y = kernels::conv_transpose2d(x, &self.weight, stride, padding, 0)?;
        add_bias(y, self.bias.as_ref())
    }
}

fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
    }
}

/// A convolution with bias, created under `vb` (`weight`, `bias`), initialised as candle-nn does.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    k: usize,
    config: ConvConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let mut layer = conv2d_no_bias(in_channels, out_channels, k, config, vb.clone())?;
    let bound = 1. / (in_channels as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    layer.bias = Some(vb.get_with_hints(out_channels, "bias", init)?);
    Ok(layer)
}

/// A convolution without bias, created under `vb` (`weight`).
pub fn conv2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    k: usize,
    config: ConvConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let weight = vb.get_with_hints(
        (out_channels, in_channels, k, k),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    Ok(Conv2d::new(weight, None, config))
}

/// A transposed convolution with bias, created under `vb` (`weight`, `bias`).
pub fn conv_transpose2d(
    in_channels: usize,
    out_channels: usize,
    k: usize,
    config: ConvConfig,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let mut layer = conv_transpose2d_no_bias(in_channels, out_channels, k, config, vb.clone())?;
    layer.bias = Some(vb.get_with_hints(out_channels, "bias", transpose_init(out_channels, k))?);
    Ok(layer)
}

/// A transposed convolution without bias, created under `vb` (`weight`).
pub fn conv_transpose2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    k: usize,
    config: ConvConfig,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let weight = vb.get_with_hints(
        (in_channels, out_channels, k, k),
        "weight",
        transpose_init(out_channels, k),
    )?;
    Ok(ConvTranspose2d::new(weight, None, config))
}

fn transpose_init(out_channels: usize, k: usize) -> Init {
    let bound = 1. / (out_channels as f64).sqrt() / k as f64;
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Batch normalisation over the channel axis with running statistics, PyTorch-style
/// (`weight`, `bias`, `running_mean`, `running_var`; running variance unbiased), and an
/// activation fused into the same pass.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// The same layer with gamma and beta cut from autograd; the running statistics are
    /// shared with `self` and still updated in training mode.
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            ..self.clone()
        }
    }

    /// `act(bn(x))` for `x [n, c, ...]`. With `train`, normalises with the batch's own
    /// statistics and moves the running ones towards them by `momentum`; otherwise uses
    /// the running statistics.
    pub fn forward_act(&self, x: &Tensor, train: bool, act: Activation) -> Result<Tensor> {
        let stats = if train {
            let stats = kernels::channel_stats(x)?;
            let count = x.elem_count() / x.dim(1)?.max(1);
            let unbias = count as f64 / (count.max(2) - 1) as f64;
            let m = self.momentum;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (stats.get(0)? * m)?)?;
            let rv =
                ((self.running_var.as_tensor() * (1.0 - m))? + (stats.get(1)? * (m * unbias))?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            stats
        } else {
            Tensor::stack(
                &[self.running_mean.as_tensor(), self.running_var.as_tensor()],
                0,
            )?
        };
        kernels::batch_norm(x, &stats, &self.weight, &self.bias, self.eps, act, train)
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, train, Activation::Identity)
    }
}

/// A BatchNorm over `channels` created under `vb`: gamma 1, beta 0, running mean 0 and
/// variance 1, as PyTorch initialises it.
pub fn batch_norm(channels: usize, eps: f64, momentum: f64, vb: VarBuilder) -> Result<BatchNorm> {
    let weight = vb.get_with_hints(channels, "weight", Init::Const(1.))?;
    let bias = vb.get_with_hints(channels, "bias", Init::Const(0.))?;
    with_running_stats(weight, bias, eps, momentum, vb)
}

/// A BatchNorm with the given affine `[c]` and running statistics `[c]` created under `vb`.
fn with_running_stats(
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    momentum: f64,
    vb: VarBuilder,
) -> Result<BatchNorm> {
    let channels = weight.dim(0)?;
    let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.))?;
    let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.))?;
    Ok(BatchNorm {
        weight,
        bias,
        running_mean: Var::from_tensor(&running_mean)?,
        running_var: Var::from_tensor(&running_var)?,
        eps,
        momentum,
    })
}

/// Class-conditional BatchNorm (de Vries et al. 2017, as in Miyato & Koyama 2018's
/// generator): the statistics are shared, the scale and shift are rows of per-class tables
/// (`weight`, `bias`, both `[classes, channels]`) picked by each sample's label.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use cdcgan_model::kernels::Activation;
/// use cdcgan_model::layers::class_batch_norm;
///
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let norm = class_batch_norm(10, 8, 1e-5, 0.1, vb.pp("bn"))?;
/// let x = Tensor::randn(0f32, 1., (4, 8, 7, 7), &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 3, 3, 9], &Device::Cpu)?;
/// let y = norm.forward_act(&x, &labels, true, Activation::Relu)?;
/// assert_eq!(y.dims(), &[4, 8, 7, 7]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClassBatchNorm {
    /// Normalisation alone: shared statistics, constant gamma 1 and beta 0.
    norm: BatchNorm,
    weight: Tensor,
    bias: Tensor,
}

impl ClassBatchNorm {
    /// `act(gamma[y] · bn(x) + beta[y])` for `x [n, c, ...]` and integer `labels [n]`; `train`
    /// as in [`BatchNorm::forward_act`].
    pub fn forward_act(
        &self,
        x: &Tensor,
        labels: &Tensor,
        train: bool,
        act: Activation,
    ) -> Result<Tensor> {
        let normed = self.norm.forward_act(x, train, Activation::Identity)?;
        let labels = labels.to_dtype(candle_core::DType::U32)?;
        // Table rows `[rows, c]` as `[rows, c, 1, ...]`, to broadcast over the positions.
        let spread = |t: &Tensor| -> Result<Tensor> {
            let mut dims = t.dims().to_vec();
            dims.resize(x.rank(), 1);
            t.reshape(dims)
        };
        let gamma = spread(&self.weight.index_select(&labels, 0)?)?;
        // The shift goes in with the activation, in one pass, as a per-class map.
        let mut per_class = x.dims().to_vec();
        per_class[0] = self.bias.dim(0)?;
        let beta = spread(&self.bias)?.broadcast_as(per_class)?.contiguous()?;
        kernels::gather_add_act(&normed.broadcast_mul(&gamma)?, &beta, &labels, act)
    }
}

/// A class-conditional BatchNorm over `channels` for `classes` labels under `vb`: every row
/// of `weight` 1 and of `bias` 0, running mean 0 and variance 1.
pub fn class_batch_norm(
    classes: usize,
    channels: usize,
    eps: f64,
    momentum: f64,
    vb: VarBuilder,
) -> Result<ClassBatchNorm> {
    let weight = vb.get_with_hints((classes, channels), "weight", Init::Const(1.))?;
    let bias = vb.get_with_hints((classes, channels), "bias", Init::Const(0.))?;
    let (ones, zeros) = (weight.get(0)?.ones_like()?, bias.get(0)?.zeros_like()?);
    Ok(ClassBatchNorm {
        norm: with_running_stats(ones, zeros, eps, momentum, vb)?,
        weight,
        bias,
    })
}
