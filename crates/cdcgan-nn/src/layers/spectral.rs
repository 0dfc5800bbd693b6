//! Spectral normalisation of a weight, on the fused kernels of [`crate::kernels`].

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::kernels;

/// Spectral normalisation of a weight (Miyato et al. 2018): `w / σ(w)`, with `σ` the largest
/// singular value of `w` seen as a matrix `[rows, rest]`, estimated by one step of power
/// iteration per training forward from a kept left singular vector `u` (`sn_u`, `[rows]`),
/// as PyTorch's `spectral_norm` does. Gradients flow through `w` and through `σ`, with `u`
/// and `v` held constant.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use cdcgan_nn::layers::spectral_norm;
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
    use rand_distr::{Distribution, Normal};

    fn normal_vec(rng: &mut impl rand::Rng, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let dist = Normal::new(mean, std).unwrap();
        (0..n).map(|_| dist.sample(rng)).collect()
    }

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
        let w = Tensor::from_vec(normal_vec(&mut rng, 576, 0.0, 0.1), shape, &device).unwrap();
        let r = Tensor::from_vec(normal_vec(&mut rng, 576, 0.0, 1.0), shape, &device).unwrap();
        let u0 = Tensor::from_vec(normal_vec(&mut rng, 12, 0.0, 1.0), 12, &device).unwrap();
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
            let values = normal_vec(&mut rng, 40, 0.0, 1.0);
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
