//! The R1 gradient penalty on real digits (Mescheder et al. 2018; StyleGAN's regulariser),
//! without second derivatives.
//!
//! R1 is `γ/2 · mean_i ‖∇ₓD(xᵢ, yᵢ)‖²` over the real batch. Its gradient in D's parameters θ
//! needs a derivative of a derivative, which candle's autograd (and the fused kernels, whose
//! backward passes are first-order) do not give. It follows from first-order passes instead:
//! with `gᵢ = ∇ₓD(xᵢ)` held fixed, `∇_θ ½‖gᵢ‖² = ∇_θ (gᵢ · ∇ₓD(xᵢ; θ))`, and the right side is
//! the θ-gradient of D's directional derivative along `gᵢ`, which a central difference gives:
//! `‖gᵢ‖ · (D(xᵢ + ε·uᵢ) − D(xᵢ − ε·uᵢ)) / 2ε` with `uᵢ = gᵢ/‖gᵢ‖`. D with LeakyReLU and no
//! BatchNorm is piecewise linear in x, so the difference is exact unless `±ε·uᵢ` crosses a
//! kink. Cost: one pass for `gᵢ` (backward to the images only) and one forward/backward over
//! the `2b` shifted images, every `r1_every` steps (lazy regularisation, the penalty scaled
//! by the interval).

use candle_core::{Tensor, Var};
use cdcgan_model::Discriminator;

use crate::error::Result;

/// The half-width of the central difference, in pixel space (images lie in `[-1, 1]`, a
/// 28x28 digit has norm about 20): small enough to stay inside one linear piece of D for
/// most digits, large enough that f32 rounding stays far below the difference.
pub(crate) const EPSILON: f64 = 1e-2;

/// The R1 term of a D step on `reals` `[b, 1, 28, 28]` with `labels` `[b]`.
pub(crate) struct R1 {
    /// A scalar whose gradient in D's parameters is that of `weight · γ/2 · mean‖∇ₓD‖²`
    /// (its value is not the penalty): add it to D's loss.
    pub surrogate: Tensor,
    /// The penalty itself, `γ/2 · mean‖∇ₓD‖²` (before `weight`), for logs.
    pub penalty: f64,
}

/// The R1 term for `d` at `reals`, with strength `gamma`, its gradient multiplied by `weight`
/// (the lazy interval). D's spectral-norm estimates are read, not moved.
pub(crate) fn r1(
    d: &Discriminator,
    reals: &Tensor,
    labels: &Tensor,
    gamma: f64,
    weight: f64,
) -> Result<R1> {
    let b = reals.dim(0)?;
    let (g, norm) = input_gradient(d, reals, labels)?;
    let penalty = gamma / 2.0 * f64::from(norm.sqr()?.mean_all()?.to_scalar::<f32>()?);
    let slope = slope_along(d, reals, labels, &g, &norm)?;
    let surrogate = ((slope * norm)?.sum_all()? * (gamma * weight / b as f64))?;
    Ok(R1 { surrogate, penalty })
}

/// D's slope `[b]` at each image along its unit gradient `g/‖g‖`, by the central difference
/// over `±EPSILON`; differentiable in D's weights.
fn slope_along(
    d: &Discriminator,
    reals: &Tensor,
    labels: &Tensor,
    g: &Tensor,
    norm: &Tensor,
) -> Result<Tensor> {
    let b = reals.dim(0)?;
    let unit = g.broadcast_div(&(norm.clamp(1e-12, f64::MAX)?.reshape((b, 1, 1, 1))?))?;
    let step = (unit * EPSILON)?;
    let shifted = Tensor::cat(&[(reals + &step)?, (reals - &step)?], 0)?;
    let logits = d.forward_t(&shifted, &Tensor::cat(&[labels, labels], 0)?, false)?;
    Ok(((logits.narrow(0, 0, b)? - logits.narrow(0, b, b)?)? / (2.0 * EPSILON))?)
}

/// `∇ₓD(x, y)` at each image `[b, 1, 28, 28]` and its norm `[b]`, detached; D's weights and
/// spectral-norm estimates are only read.
fn input_gradient(d: &Discriminator, reals: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = Var::from_tensor(&reals.detach())?;
    let grads = d
        .frozen()
        .forward_t(x.as_tensor(), labels, false)?
        .sum_all()?
        .backward()?;
    let g = grads
        .get(x.as_tensor())
        .ok_or_else(|| candle_core::Error::Msg("R1: no gradient reached the images".into()))?
        .detach();
    let norm = g.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?;
    Ok((g, norm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use cdcgan_model::{Gan, ModelConfig, Net};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn tiny_gan() -> Gan {
        let config = ModelConfig {
            gen_width: 8,
            disc_width: 8,
            projection: true,
            spectral_norm: true,
            spectral_norm_proj: false,
            ..ModelConfig::default()
        };
        Gan::new(config, 3, &Device::Cpu).unwrap()
    }

    fn batch(n: usize, seed: u64) -> (Tensor, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pixels: Vec<f32> = (0..n * 784).map(|_| rng.random_range(-1.0..1.0)).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
        (
            Tensor::from_vec(pixels, (n, 1, 28, 28), &Device::Cpu).unwrap(),
            Tensor::from_vec(labels, n, &Device::Cpu).unwrap(),
        )
    }

    #[test]
    fn the_central_difference_is_the_gradient_norm() {
        // Along uᵢ = gᵢ/‖gᵢ‖, D's slope is ‖gᵢ‖: the difference the surrogate is built from
        // measures what autograd measures.
        let gan = tiny_gan();
        let d = &gan.discriminator;
        let (x, y) = batch(8, 1);
        let (g, norm) = input_gradient(d, &x, &y).unwrap();
        let slope = slope_along(d, &x, &y, &g, &norm).unwrap();
        let slope = slope.to_vec1::<f32>().unwrap();
        let norm = norm.to_vec1::<f32>().unwrap();
        for (s, n) in slope.iter().zip(&norm) {
            assert!(*n > 0.0);
            assert!((s / n - 1.0).abs() < 1e-2, "slope {s} vs |g| {n}");
        }
    }

    #[test]
    fn descending_the_surrogate_lowers_the_penalty() {
        // The surrogate's only job is its gradient: plain gradient steps on it must shrink
        // ‖∇ₓD‖ on the digits it was computed on (a sign or scale error would not).
        let gan = tiny_gan();
        let d = &gan.discriminator;
        let (x, y) = batch(8, 4);
        let vars = gan.params(Net::Discriminator);
        let before = r1(d, &x, &y, 1.0, 1.0).unwrap().penalty;
        for _ in 0..30 {
            let grads = r1(d, &x, &y, 1.0, 1.0)
                .unwrap()
                .surrogate
                .backward()
                .unwrap();
            for (_, var) in &vars {
                if let Some(g) = grads.get(var.as_tensor()) {
                    var.set(&(var.as_tensor() - (g * 0.5).unwrap()).unwrap())
                        .unwrap();
                }
            }
        }
        let after = r1(d, &x, &y, 1.0, 1.0).unwrap().penalty;
        assert!(after < 0.5 * before, "penalty {before} -> {after}");
    }

    #[test]
    fn weight_scales_the_gradient_not_the_penalty() {
        let gan = tiny_gan();
        let d = &gan.discriminator;
        let (x, y) = batch(4, 5);
        let one = r1(d, &x, &y, 1.0, 1.0).unwrap();
        let lazy = r1(d, &x, &y, 1.0, 16.0).unwrap();
        assert_eq!(one.penalty, lazy.penalty);
        assert!(one.penalty > 0.0);
        let s1 = one.surrogate.to_scalar::<f32>().unwrap();
        let s16 = lazy.surrogate.to_scalar::<f32>().unwrap();
        assert!((s16 - 16.0 * s1).abs() <= 1e-4 * s16.abs(), "{s1} {s16}");
    }
}
