//! Spectral normalisation's arithmetic: one power-iteration step on a weight matrix and
//! `w / σ` with its backward pass, each in one pass over the weight.
//!
//! The same computation in candle's stock ops is about twenty small ops forward and more
//! backward, for matrices of at most 128 x 1024: their dispatch, allocation and thread-pool
//! hand-offs cost several milliseconds per discriminator pass, a fifth of a batch-32
//! training step, where the arithmetic itself is a few hundred thousand multiply-adds.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::{CResult, contiguous_f32, par_fill};

/// Added to every norm before dividing by it, as PyTorch's `spectral_norm` does.
pub const SN_EPS: f64 = 1e-12;

/// One power-iteration step's estimate of a matrix's largest singular value `σ = uᵀ·W·v`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralEstimate {
    /// The left singular vector estimate (unit length), `[rows]`.
    pub u: Vec<f32>,
    /// The right singular vector estimate (unit length), `[cols]`.
    pub v: Vec<f32>,
    /// `uᵀ·W·v`.
    pub sigma: f32,
}

/// `x / (‖x‖ + ε)`.
fn unit(x: &[f64]) -> Vec<f32> {
    let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt() + SN_EPS;
    x.iter().map(|a| (a / norm) as f32).collect()
}

/// The estimate for `matrix [rows, cols]` (row-major) from the previous left vector `u`
/// (any length scale): `v = unit(Wᵀu)`, then with `update` `u = unit(W·v)` (one step
/// towards the top singular pair, PyTorch's training-mode step), and `σ = uᵀ·W·v`.
///
/// # Panics
/// If `matrix` does not hold `u.len()` rows (a bug in the caller).
pub fn power_iteration(matrix: &[f32], u: &[f32], update: bool) -> SpectralEstimate {
    let rows = u.len();
    assert!(
        rows > 0 && matrix.len().is_multiple_of(rows),
        "power_iteration: {} values for {rows} rows",
        matrix.len()
    );
    let cols = matrix.len() / rows;
    let u0 = unit(&u.iter().map(|&a| f64::from(a)).collect::<Vec<_>>());
    let mut wtu = vec![0.0f64; cols];
    for (row, &ur) in matrix.chunks_exact(cols).zip(&u0) {
        let ur = f64::from(ur);
        for (acc, &w) in wtu.iter_mut().zip(row) {
            *acc += ur * f64::from(w);
        }
    }
    let v = unit(&wtu);
    let wv: Vec<f64> = matrix
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .zip(&v)
                .map(|(&w, &x)| f64::from(w) * f64::from(x))
                .sum()
        })
        .collect();
    let u = if update { unit(&wv) } else { u0 };
    let sigma = u
        .iter()
        .zip(&wv)
        .map(|(&a, b)| f64::from(a) * b)
        .sum::<f64>() as f32;
    SpectralEstimate { u, v, sigma }
}

/// `w / σ` for a weight `w` whose first axis has `estimate.u.len()` entries, differentiable
/// in `w` through `σ = uᵀ·W·v` with `u` and `v` held fixed (PyTorch's gradient). Contiguous
/// f32 CPU tensors only; [`crate::layers::SpectralNorm`] falls back to candle's ops otherwise.
pub fn spectral_divide(w: &Tensor, estimate: SpectralEstimate) -> CResult<Tensor> {
    let rows = w.dim(0)?;
    if estimate.u.len() != rows || estimate.u.len() * estimate.v.len() != w.elem_count() {
        candle_core::bail!(
            "spectral_divide: weight {:?} and vectors of {} and {} do not fit",
            w.dims(),
            estimate.u.len(),
            estimate.v.len()
        )
    }
    w.contiguous()?.apply_op1(SpectralDivide(estimate))
}

struct SpectralDivide(SpectralEstimate);

impl CustomOp1 for SpectralDivide {
    fn name(&self) -> &'static str {
        "cdcgan-spectral-divide"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let w = contiguous_f32(s, l, self.name())?;
        let inv = 1.0 / self.0.sigma;
        let cols = self.0.v.len().max(1);
        let y = par_fill(
            w.len(),
            cols,
            |k| w[k * cols..(k + 1) * cols].iter().map(move |&a| a * inv),
            &[],
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, w: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let g = grad
            .contiguous()?
            .apply_op2_no_bwd(w, &SpectralDivideGrad(self.0.clone()))?;
        Ok(Some(g))
    }
}

/// `∂/∂W` of `w / σ` for the gradient `g` of the result:
/// `g / σ − (Σ g·w) / σ² · u vᵀ`.
struct SpectralDivideGrad(SpectralEstimate);

impl CustomOp2 for SpectralDivideGrad {
    fn name(&self) -> &'static str {
        "cdcgan-spectral-divide-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let g = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let SpectralEstimate { u, v, sigma } = &self.0;
        if g.len() != w.len() || g.len() != u.len() * v.len() {
            candle_core::bail!("{}: operands do not match", self.name())
        }
        let dot: f64 = g
            .iter()
            .zip(w)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let inv = 1.0 / sigma;
        let scale = (dot / (f64::from(*sigma) * f64::from(*sigma))) as f32;
        let cols = v.len().max(1);
        let out = par_fill(
            g.len(),
            cols,
            |k| {
                let c = scale * u[k];
                g[k * cols..(k + 1) * cols]
                    .iter()
                    .zip(v)
                    .map(move |(&gi, &vi)| gi * inv - c * vi)
            },
            &[],
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
