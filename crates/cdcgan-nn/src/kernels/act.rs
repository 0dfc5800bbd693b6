//! Activations fused into the op before them, and `act(x + table[labels])`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use super::{CResult, contiguous_f32, fast_path, par_fill};

/// An elementwise activation fused into the op before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None: `y = bn(x)`.
    Identity,
    /// `max(0, bn(x))`.
    Relu,
    /// `bn(x)` where positive, `slope · bn(x)` elsewhere.
    LeakyRelu(f32),
}

impl Activation {
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Self::Identity => v,
            Self::Relu => v.max(0.0),
            Self::LeakyRelu(s) => {
                if v > 0.0 {
                    v
                } else {
                    s * v
                }
            }
        }
    }

    /// The derivative, read off the output (its sign is the input's for these activations).
    pub(crate) fn slope_at_output(self, y: f32) -> f32 {
        match self {
            Self::Identity => 1.0,
            Self::Relu => f32::from(u8::from(y > 0.0)),
            Self::LeakyRelu(s) => {
                if y > 0.0 {
                    1.0
                } else {
                    s
                }
            }
        }
    }

    pub(crate) fn stock(self, x: &Tensor) -> CResult<Tensor> {
        match self {
            Self::Identity => Ok(x.clone()),
            Self::Relu => x.relu(),
            Self::LeakyRelu(s) => {
                // max(x, s·x) for 0 < s < 1, as candle-nn's leaky_relu computes it.
                let scaled = (x * f64::from(s))?;
                x.maximum(&scaled)
            }
        }
    }
}

/// `act(x + table[labels])` for `x [b, ...]`, `table [k, ...]` and integer `labels [b]`:
/// a per-class additive term (such as a label-conditioned bias map) and the activation in
/// one pass. Differentiable in `x` and `table`.
pub fn gather_add_act(
    x: &Tensor,
    table: &Tensor,
    labels: &Tensor,
    act: Activation,
) -> CResult<Tensor> {
    let labels = labels.to_dtype(DType::U32)?;
    if x.dims()[1..] != table.dims()[1..] || labels.dims() != [x.dim(0)?] {
        candle_core::bail!(
            "gather_add_act: x {:?}, table {:?} and labels {:?} do not fit",
            x.dims(),
            table.dims(),
            labels.dims()
        )
    }
    if !fast_path(x, table) {
        return act.stock(&(x + table.index_select(&labels, 0)?)?);
    }
    x.contiguous()?
        .apply_op3(&table.contiguous()?, &labels, GatherAddAct { act })
}

struct GatherAddAct {
    act: Activation,
}

impl CustomOp3 for GatherAddAct {
    fn name(&self) -> &'static str {
        "cdcgan-gather-add-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let table = contiguous_f32(s2, l2, self.name())?;
        let labels = match (s3, l3.contiguous_offsets()) {
            (CpuStorage::U32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("{}: labels must be contiguous u32", self.name()),
        };
        let row = x.len() / labels.len().max(1);
        let classes = table.len() / row.max(1);
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            candle_core::bail!("{}: label {bad} out of range 0..{classes}", self.name())
        }
        let act = self.act;
        let y = par_fill(
            x.len(),
            row,
            |k| {
                let l = labels[k] as usize;
                let t = &table[l * row..(l + 1) * row];
                x[k * row..(k + 1) * row]
                    .iter()
                    .zip(t)
                    .map(move |(&a, &b)| act.apply(a + b))
            },
            &[],
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        table: &Tensor,
        labels: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &ActGrad { act: self.act })?;
        let dtable = if table.track_op() {
            Some(table.zeros_like()?.index_add(labels, &g, 0)?)
        } else {
            None
        };
        Ok((x.track_op().then_some(g), dtable, None))
    }
}

/// `grad · act'(y)`, reading the derivative off the activation's output `y`.
pub(crate) struct ActGrad {
    pub(crate) act: Activation,
}

impl CustomOp2 for ActGrad {
    fn name(&self) -> &'static str {
        "cdcgan-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        if y.len() != dy.len() {
            candle_core::bail!("{}: operands do not match", self.name())
        }
        let act = self.act;
        const CHUNK: usize = 4096;
        let g = par_fill(
            y.len(),
            CHUNK,
            |k| {
                let r = k * CHUNK..((k + 1) * CHUNK).min(y.len());
                y[r.clone()]
                    .iter()
                    .zip(&dy[r])
                    .map(move |(&yi, &di)| di * act.slope_at_output(yi))
            },
            &[],
        );
        Ok((CpuStorage::F32(g), l1.shape().clone()))
    }
}
