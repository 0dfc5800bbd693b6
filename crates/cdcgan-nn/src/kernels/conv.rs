//! Convolution and transposed convolution: im2col / col2im around one gemm per chunk, or
//! Winograd F(4x4, 2x2) for the 4x4 stride-2 padding-1 shapes of `dcgan28` ([`winograd`]).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{CResult, contiguous_f32, dims4, fast_path};

mod gemm;
mod geometry;
mod im2col;
mod winograd;

use gemm::{Mat, gemm};
use geometry::Geometry;
use im2col::{im2col_data, im2col_forward, im2col_weight};

/// `conv2d` of `x [n, ci, h, w]` with `w [co, ci, k, k]` (no bias, no dilation, one group).
///
/// Uses the fast kernels for f32 tensors on the CPU and candle's `conv2d` elsewhere;
/// both are differentiable.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> CResult<Tensor> {
    if !fast_path(x, w) {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    x.apply_op2(&w, Conv { stride, padding })
}

/// `conv_transpose2d` of `x [n, ci, h, w]` with `w [ci, co, k, k]` (PyTorch's layout).
///
/// The output side is `(h - 1)·stride - 2·padding + k + output_padding`. Fast kernels for
/// f32 on the CPU, candle's `conv_transpose2d` elsewhere; both are differentiable.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> CResult<Tensor> {
    if !fast_path(x, w) {
        return x.conv_transpose2d(w, padding, output_padding, stride, 1);
    }
    let (_, _, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let side = |s: usize| {
        s.checked_sub(1)
            .and_then(|s| (s * stride + k + output_padding).checked_sub(2 * padding))
    };
    let (Some(oh @ 1..), Some(ow @ 1..)) = (side(h), side(wd)) else {
        candle_core::bail!(
            "conv_transpose2d: padding {padding} leaves no output for a {h}x{wd} input"
        )
    };
    if output_padding >= stride.max(1) {
        candle_core::bail!("conv_transpose2d: output_padding must be smaller than the stride");
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    x.apply_op2(
        &w,
        ConvData {
            stride,
            padding,
            out_hw: (oh, ow),
        },
    )
}

/// `y [n, co, ho, wo] = conv(x [n, ci, h, w], w [co, ci, k, k])`.
fn conv_forward(g: &Geometry, x: &[f32], wt: &[f32]) -> Vec<f32> {
    if winograd::applies(g) {
        winograd::forward(g, x, wt)
    } else {
        im2col_forward(g, x, wt)
    }
}

/// The input gradient of a convolution, the forward pass of a transposed one.
fn conv_data(g: &Geometry, y: &[f32], wt: &[f32]) -> Vec<f32> {
    if winograd::applies(g) {
        winograd::data(g, y, wt)
    } else {
        im2col_data(g, y, wt)
    }
}

/// The weight gradient of a convolution.
fn conv_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if winograd::applies(g) {
        winograd::weight(g, x, dy)
    } else {
        im2col_weight(g, x, dy)
    }
}

/// Convolution forward as a custom op: `(x, w) -> y`.
struct Conv {
    stride: usize,
    padding: usize,
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "cdcgan-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let g = Geometry::new(
            dims4(l1, self.name())?,
            dims4(l2, self.name())?,
            self.stride,
            self.padding,
        )?;
        let (x, w) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
        );
        let y = conv_forward(&g, x, w);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.co, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        let dx = if x.track_op() {
            let op = ConvData {
                stride: self.stride,
                padding: self.padding,
                out_hw: (h, wd),
            };
            Some(grad.apply_op2(w, op)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let op = ConvWeight {
                stride: self.stride,
                padding: self.padding,
                k: w.dim(2)?,
            };
            Some(x.apply_op2(&grad, op)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Transposed convolution as a custom op: `(y, w) -> x` with `x`'s side given.
struct ConvData {
    stride: usize,
    padding: usize,
    out_hw: (usize, usize),
}

impl CustomOp2 for ConvData {
    fn name(&self) -> &'static str {
        "cdcgan-conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, co, ho, wo) = dims4(l1, self.name())?;
        let (wco, ci, k, k2) = dims4(l2, self.name())?;
        if wco != co {
            candle_core::bail!(
                "{}: weight [{wco}, {ci}, {k}, {k2}] does not fit {co} input channels",
                self.name()
            )
        }
        let (h, w) = self.out_hw;
        let g = Geometry::new((n, ci, h, w), (co, ci, k, k2), self.stride, self.padding)?;
        if (g.ho, g.wo) != (ho, wo) {
            candle_core::bail!(
                "{}: input {ho}x{wo} does not map to output {h}x{w}",
                self.name()
            )
        }
        let (y, wt) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
        );
        Ok((
            CpuStorage::F32(conv_data(&g, y, wt)),
            Shape::from((n, ci, h, w)),
        ))
    }

    fn bwd(
        &self,
        y: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dy = if y.track_op() {
            let op = Conv {
                stride: self.stride,
                padding: self.padding,
            };
            Some(grad.apply_op2(w, op)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let op = ConvWeight {
                stride: self.stride,
                padding: self.padding,
                k: w.dim(2)?,
            };
            Some(grad.apply_op2(y, op)?)
        } else {
            None
        };
        Ok((dy, dw))
    }
}

/// The weight gradient: `(x, dy) -> dw`. Not itself differentiable.
struct ConvWeight {
    stride: usize,
    padding: usize,
    k: usize,
}

impl CustomOp2 for ConvWeight {
    fn name(&self) -> &'static str {
        "cdcgan-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (n, ci, h, w) = dims4(l1, self.name())?;
        let (dn, co, dho, dwo) = dims4(l2, self.name())?;
        let g = Geometry::new(
            (n, ci, h, w),
            (co, ci, self.k, self.k),
            self.stride,
            self.padding,
        )?;
        if (dn, g.ho, g.wo) != (n, dho, dwo) {
            candle_core::bail!(
                "{}: gradient [{dn}, {co}, {dho}, {dwo}] does not match input [{n}, {ci}, {h}, {w}]",
                self.name()
            )
        }
        let (x, dy) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
        );
        Ok((
            CpuStorage::F32(conv_weight(&g, x, dy)),
            Shape::from((co, ci, self.k, self.k)),
        ))
    }
}
