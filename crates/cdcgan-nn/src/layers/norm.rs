//! Batch normalisation, plain and class-conditional, with the following activation fused in.

use candle_core::{ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::kernels::{self, Activation};

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
/// use cdcgan_nn::kernels::Activation;
/// use cdcgan_nn::layers::class_batch_norm;
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
