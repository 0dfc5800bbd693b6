//! Binary cross-entropy on logits, stable for any logit size.

use candle_core::Tensor;

use crate::error::Result;

/// Mean BCE of `logits` against a constant `target` in `[0, 1]`.
///
/// Uses `max(x, 0) - x·t + ln(1 + e^{-|x|})`, which never overflows: at logits of ±100 the loss
/// and its gradient stay finite.
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let loss = ((logits.relu()? - (logits * target)?)? + softplus_neg_abs)?;
    Ok(loss.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn bce_ref(x: f64, t: f64) -> f64 {
        let p = 1.0 / (1.0 + (-x).exp());
        -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
    }

    #[test]
    fn matches_the_definition_on_moderate_logits() {
        for &x in &[-5.0f64, -1.0, -0.1, 0.3, 2.0, 7.0] {
            for &t in &[0.0, 0.9, 1.0] {
                let l = bce_with_logits(&Tensor::new(&[x as f32], &Device::Cpu).unwrap(), t)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    (f64::from(l) - bce_ref(x, t)).abs() < 1e-5,
                    "x={x} t={t}: {l}"
                );
            }
        }
    }

    #[test]
    fn is_finite_with_finite_gradients_at_extreme_logits() {
        let x = Var::new(&[-100f32, 100., -1e4, 1e4], &Device::Cpu).unwrap();
        for t in [0.0, 1.0] {
            let l = bce_with_logits(x.as_tensor(), t).unwrap();
            let v = l.to_scalar::<f32>().unwrap();
            assert!(v.is_finite(), "loss {v}");
            let g = l.backward().unwrap();
            let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
            assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        }
        // Confidently right is ~0, confidently wrong is ~|x| (mean over the 4 logits).
        let l = bce_with_logits(&Tensor::new(&[100f32], &Device::Cpu).unwrap(), 1.0).unwrap();
        assert!(l.to_scalar::<f32>().unwrap() < 1e-6);
        let l = bce_with_logits(&Tensor::new(&[-100f32], &Device::Cpu).unwrap(), 1.0).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 100.0).abs() < 1e-3);
    }

    #[test]
    fn gradient_is_sigmoid_minus_target() {
        let x = Var::new(&[0.7f32], &Device::Cpu).unwrap();
        let g = bce_with_logits(x.as_tensor(), 0.9)
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0];
        let want = 1.0 / (1.0 + (-0.7f32).exp()) - 0.9;
        assert!((g - want).abs() < 1e-6, "{g} vs {want}");
    }
}
