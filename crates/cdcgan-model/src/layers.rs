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
        self.forward_act(x, Activation::Identity)
    }
}

impl Conv2d {
    /// `act(conv(x) + bias)`, the bias and the activation applied in one pass (a layer with
    /// no BatchNorm after it).
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let y = kernels::conv2d(x, &self.weight, self.config.stride, self.config.padding)?;
        match &self.bias {
            Some(b) => kernels::add_bias_act(&y, b, act),
            None => act.stock(&y),
        }
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

/// `y` plus the per-channel `bias`, if there is one.
pub(crate) fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(b) => Ok(kernels::add_bias(&y, b)?),
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

/// Spectral normalisation of a weight (Miyato et al. 2018): `w / σ(w)`, with `σ` the largest
/// singular value of `w` seen as a matrix `[rows, rest]`, estimated by one step of power
/// iteration per training forward from a kept left singular vector `u` (`sn_u`, `[rows]`),
/// as PyTorch's `spectral_norm` does. Gradients flow through `w` and through `σ`, with `u`
/// and `v` held constant.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use cdcgan_model::layers::spectral_norm;
///
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let sn = spectral_norm(2, vb.pp("fc"))?;
/// let w = Tensor::new(&[[3f32, 0.], [0., 1.]], &Device::Cpu)?;
/// for _ in 0..20 {
///     sn.normalise(&w, true)?; // training forwards refine `u`
/// }
/// let normed = sn.normalise(&w, false)?.to_vec2::<f32>()?;
/// assert!((normed[0][0] - 1.0).abs() < 1e-4 && (normed[1][1] - 1.0 / 3.0).abs() < 1e-4);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SpectralNorm {
    u: Var,
}

impl SpectralNorm {
    /// `w / σ(w)` for a weight whose first axis has `rows` entries. With `update`, first
    /// moves `u` one power-iteration step towards `w`'s top left singular vector (training
    /// mode); otherwise `u` is read as it is. σ = uᵀ·W·v is differentiable in `w`, with `v`
    /// from before the step (PyTorch's estimate).
    pub fn normalise(&self, w: &Tensor, update: bool) -> Result<Tensor> {
        if !kernels::fast_path(w, self.u.as_tensor()) {
            return self.normalise_stock(w, update);
        }
        let u = self.u.as_tensor().to_vec1::<f32>()?;
        if u.is_empty() || w.dim(0)? != u.len() {
            candle_core::bail!(
                "spectral norm: weight {:?} for a vector `u` of {}",
                w.dims(),
                u.len()
            )
        }
        let matrix = w.flatten_all()?.to_vec1::<f32>()?;
        let estimate = kernels::power_iteration(&matrix, &u, update);
        if update {
            self.u
                .set(&Tensor::new(estimate.u.as_slice(), w.device())?)?;
        }
        kernels::spectral_divide(w, estimate)
    }

    /// [`SpectralNorm::normalise`] in candle's own ops (other devices and dtypes, and the
    /// reference the fused kernel is tested against).
    pub(crate) fn normalise_stock(&self, w: &Tensor, update: bool) -> Result<Tensor> {
        let rows = w.dim(0)?;
        let matrix = w.reshape((rows, ()))?;
        let fixed = matrix.detach();
        let unit = |t: Tensor| -> Result<Tensor> {
            let norm = (t.sqr()?.sum_all()?.sqrt()? + kernels::SN_EPS)?;
            t.broadcast_div(&norm)
        };
        // Unit length on read too: a fresh `u` may have any scale.
        let mut u = unit(self.u.as_tensor().reshape((1, rows))?)?;
        let v = unit(u.matmul(&fixed)?)?;
        if update {
            u = unit(v.matmul(&fixed.t()?)?)?;
            self.u.set(&u.reshape(rows)?)?;
        }
        let sigma = u.matmul(&matrix.matmul(&v.t()?)?)?.reshape(())?;
        w.broadcast_div(&sigma)
    }
}

/// A spectral normaliser for a weight with `rows` output rows, its vector `sn_u` created
/// under `vb` (the layer's own path, beside its `weight`). `u` starts as a random draw
/// (its scale does not matter).
pub fn spectral_norm(rows: usize, vb: VarBuilder) -> Result<SpectralNorm> {
    let u = vb.get_with_hints(
        rows,
        "sn_u",
        Init::Randn {
            mean: 0.,
            stdev: 1.,
        },
    )?;
    Ok(SpectralNorm {
        u: Var::from_tensor(&u)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The largest singular value of `w [r, c]`, by 200 power-iteration steps in f64.
    fn top_singular_value(w: &[Vec<f32>]) -> f64 {
        let cols = w[0].len();
        let mut v = vec![1.0f64; cols];
        let mut sigma = 0.0;
        for _ in 0..200 {
            let wv: Vec<f64> = w
                .iter()
                .map(|row| row.iter().zip(&v).map(|(a, b)| f64::from(*a) * b).sum())
                .collect();
            let mut wtwv = vec![0.0f64; cols];
            for (row, s) in w.iter().zip(&wv) {
                for (acc, a) in wtwv.iter_mut().zip(row) {
                    *acc += f64::from(*a) * s;
                }
            }
            let norm = wtwv.iter().map(|x| x * x).sum::<f64>().sqrt();
            sigma = norm.sqrt();
            v = wtwv.iter().map(|x| x / norm).collect();
        }
        sigma
    }

    #[test]
    fn fused_spectral_norm_matches_candle_ops_in_values_steps_and_gradients() {
        let device = Device::Cpu;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        let shape = (12, 3, 4, 4);
        let w =
            Tensor::from_vec(crate::normal_vec(&mut rng, 576, 0.0, 0.1), shape, &device).unwrap();
        let r =
            Tensor::from_vec(crate::normal_vec(&mut rng, 576, 0.0, 1.0), shape, &device).unwrap();
        let u0 = Tensor::from_vec(crate::normal_vec(&mut rng, 12, 0.0, 1.0), 12, &device).unwrap();
        let run = |fused: bool| {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
            let sn = spectral_norm(12, vb.pp("conv")).unwrap();
            sn.u.set(&u0).unwrap();
            let w = Var::from_tensor(&w).unwrap();
            let mut outs = Vec::new();
            for update in [true, true, false] {
                let y = if fused {
                    sn.normalise(w.as_tensor(), update)
                } else {
                    sn.normalise_stock(w.as_tensor(), update)
                }
                .unwrap();
                let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let grad = grads.get(w.as_tensor()).unwrap();
                for t in [&y, grad, sn.u.as_tensor()] {
                    outs.push(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                }
            }
            outs
        };
        for (k, (a, b)) in run(true).iter().zip(run(false)).enumerate() {
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() < 1e-5 * (1.0 + y.abs()),
                    "output {k}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn spectral_norm_refuses_a_vector_of_the_wrong_length() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let sn = spectral_norm(3, vb.pp("fc")).unwrap();
        let w = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
        let err = sn.normalise(&w, true).unwrap_err().to_string();
        assert!(err.contains("spectral norm"), "{err}");
    }

    #[test]
    fn spectral_norm_converges_to_unit_top_singular_value_and_differentiates_sigma() {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let sn = spectral_norm(5, vb.pp("layer")).unwrap();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let mut randn = || {
            let values = crate::normal_vec(&mut rng, 40, 0.0, 1.0);
            Tensor::from_vec(values, (5, 2, 2, 2), &device).unwrap()
        };
        let w = Var::from_tensor(&randn()).unwrap();
        // Read-only use does not depend on the scale of `u`.
        let before = sn.normalise(w.as_tensor(), false).unwrap();
        sn.u.set(&(sn.u.as_tensor() * 100.0).unwrap()).unwrap();
        let scaled = sn.normalise(w.as_tensor(), false).unwrap();
        let gap = (before - scaled).unwrap().abs().unwrap().max_all().unwrap();
        assert!(gap.to_scalar::<f32>().unwrap() < 1e-5);
        for _ in 0..100 {
            sn.normalise(w.as_tensor(), true).unwrap();
        }
        let normed = sn.normalise(w.as_tensor(), false).unwrap();
        let rows = normed.reshape((5, 8)).unwrap().to_vec2::<f32>().unwrap();
        let top = top_singular_value(&rows);
        assert!((top - 1.0).abs() < 1e-4, "{top}");

        // d/dW sum(normalise(W) * R) against central differences, u held fixed.
        let r = randn();
        let loss = |w: &Tensor| -> f64 {
            let y = sn.normalise(w, false).unwrap();
            f64::from(
                (y * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
            )
        };
        let grads = (sn.normalise(w.as_tensor(), false).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grad = grads.get(w.as_tensor()).unwrap().flatten_all().unwrap();
        let grad = grad.to_vec1::<f32>().unwrap();
        let base = w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let h = 1e-2f32;
        for i in 0..base.len() {
            let at = |d: f32| {
                let mut p = base.clone();
                p[i] += d;
                loss(&Tensor::from_vec(p, (5, 2, 2, 2), &device).unwrap())
            };
            let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
            let analytic = f64::from(grad[i]);
            assert!(
                (numeric - analytic).abs() < 2e-3 * (1.0 + analytic.abs()),
                "element {i}: numeric {numeric} vs analytic {analytic}"
            );
        }
    }
}
