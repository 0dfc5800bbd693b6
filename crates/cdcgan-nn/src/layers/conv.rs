//! 2-d convolutions and transposed convolutions with an optional bias, on the fast kernels.

use candle_core::{Module, Result, Tensor};
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
        self.forward_act(x, Activation::Identity)
    }
}

impl Conv2d {
    /// `act(conv(x) + bias)`, the bias and the activation applied in one pass (a layer with
    /// no BatchNorm after it).
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let y = kernels::conv2d(x, &self.weight, self.config.stride, self.config.padding)?;
        bias_act(&y, self.bias.as_ref(), act)
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
        bias_act(&y, self.bias.as_ref(), Activation::Identity)
    }
}

/// `act(y + bias)` per channel of `y [n, c, ...]`, with the bias left out where there is none:
/// what a convolution layer applies after its kernel, in one pass.
pub fn bias_act(y: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    match bias {
        Some(b) => kernels::add_bias_act(y, b, act),
        None => act.stock(y),
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
