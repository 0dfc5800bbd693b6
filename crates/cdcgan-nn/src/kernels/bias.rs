//! A per-channel bias and the activation after it, with a backward pass that sums the
//! gradient per channel in one pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::act::{ActGrad, Activation};
use super::norm::{channel_shape, channel_sums, lane_sums, ncp};
use super::{CResult, contiguous_f32, fast_path, par_fill};

/// `x + bias` per channel of `x [n, c, ...]`, `bias [c]`; differentiable in both.
///
/// candle's `broadcast_add` gives the same values, but its backward sums the gradient over
/// the broadcast dimensions with a strided reduction that took 3% of a small-batch training
/// step; here the bias gradient is one pass over contiguous planes.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> CResult<Tensor> {
    add_bias_act(x, bias, Activation::Identity)
}

/// `act(x + bias)` per channel of `x [n, c, ...]`, `bias [c]`: [`add_bias`] and the activation
/// in one pass forward and one backward (a layer without BatchNorm, such as a spectrally
/// normalised convolution). Differentiable in both.
pub fn add_bias_act(x: &Tensor, bias: &Tensor, act: Activation) -> CResult<Tensor> {
    let c = x.dim(1)?;
    if bias.dims() != [c] {
        candle_core::bail!("add_bias: {c} channels but bias {:?}", bias.dims())
    }
    if !fast_path(x, bias) {
        return act.stock(&x.broadcast_add(&bias.reshape(channel_shape(x))?)?);
    }
    x.contiguous()?
        .apply_op2(&bias.contiguous()?, AddBias { act })
}

struct AddBias {
    act: Activation,
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "cdcgan-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (_, c, p) = ncp(l1, self.name())?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let bias = contiguous_f32(s2, l2, self.name())?;
        if bias.len() != c {
            candle_core::bail!("{}: bias must be [{c}]", self.name())
        }
        // Chunk k is plane k: channel k % c.
        let act = self.act;
        let y = par_fill(
            x.len(),
            p,
            |k| {
                let b = bias[k % c];
                x[k * p..(k + 1) * p].iter().map(move |&v| act.apply(v + b))
            },
            &[],
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let grad = match self.act {
            Activation::Identity => grad.clone(),
            act => res.apply_op2_no_bwd(&grad.contiguous()?, &ActGrad { act })?,
        };
        let dbias = if bias.track_op() {
            Some(grad.contiguous()?.apply_op1_no_bwd(&ChannelSums)?)
        } else {
            None
        };
        Ok((x.track_op().then(|| grad.clone()), dbias))
    }
}

/// Per-channel sums of `x [n, c, ...]`, as `[c]`; not differentiable.
struct ChannelSums;

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "cdcgan-channel-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l, self.name())?;
        let x = contiguous_f32(s, l, self.name())?;
        let sums = channel_sums(n, c, |img, ch| {
            lane_sums(&x[(img * c + ch) * p..(img * c + ch + 1) * p], |e| (e, 0.0))
        });
        let out = sums.iter().map(|s| s.0 as f32).collect();
        Ok((CpuStorage::F32(out), Shape::from(c)))
    }
}
