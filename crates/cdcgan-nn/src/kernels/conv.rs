//! Convolution and transposed convolution: im2col / col2im around one gemm per chunk, or
//! Winograd F(4x4, 2x2) for the 4x4 stride-2 padding-1 shapes of `dcgan28` ([`winograd`]).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{CResult, contiguous_f32, dims4, fast_path, split, with_scratch};

mod winograd;

/// Columns (output positions of all images in a chunk) a gemm call aims for.
const TARGET_COLUMNS: usize = 512;

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

/// The shape of one convolution: input `[n, ci, h, w]`, weight `[co, ci, k, k]`,
/// output `[n, co, ho, wo]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    ho: usize,
    wo: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn new(
        (n, ci, h, w): (usize, usize, usize, usize),
        (co, wci, k, k2): (usize, usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> CResult<Self> {
        if wci != ci || k != k2 || k == 0 || stride == 0 || h == 0 || w == 0 {
            candle_core::bail!(
                "conv: weight [{co}, {wci}, {k}, {k2}] does not fit {ci} input channels \
                 (square kernel, stride >= 1, non-empty input)"
            )
        }
        let out = |s: usize| {
            (s + 2 * padding)
                .checked_sub(k)
                .map(|r| r / stride + 1)
                .filter(|_| padding < k)
        };
        let (Some(ho), Some(wo)) = (out(h), out(w)) else {
            candle_core::bail!("conv: kernel {k} with padding {padding} does not fit {h}x{w}")
        };
        Ok(Self {
            n,
            ci,
            h,
            w,
            co,
            k,
            ho,
            wo,
            stride,
            padding,
        })
    }

    /// Rows of the column matrix: `ci·k·k`.
    fn rows(&self) -> usize {
        self.ci * self.k * self.k
    }
    /// Output positions per image.
    fn positions(&self) -> usize {
        self.ho * self.wo
    }
    fn in_size(&self) -> usize {
        self.ci * self.h * self.w
    }
    fn out_size(&self) -> usize {
        self.co * self.positions()
    }
    /// Images per gemm call.
    fn chunk(&self) -> usize {
        (TARGET_COLUMNS / self.positions().max(1)).clamp(1, self.n.max(1))
    }

    /// The output indices `o` in `0..outs` whose input `o·stride - padding + tap` lies in
    /// `0..side`, as a range (they are contiguous).
    fn valid(&self, tap: usize, side: usize, outs: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(tap).div_ceil(s);
        // o·s + tap - p <= side - 1  <=>  o <= (side - 1 + p - tap) / s
        let hi = match (side + p).checked_sub(tap + 1) {
            Some(v) => (v / s + 1).min(outs),
            None => 0,
        };
        lo.min(hi)..hi
    }

    /// Writes image `x [ci, h, w]` as columns `col0..col0 + positions` of `cols [rows, ld]`.
    fn im2col(&self, x: &[f32], cols: &mut [f32], ld: usize, col0: usize) {
        let (k, s) = (self.k, self.stride);
        for c in 0..self.ci {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                let ys = self.valid(ky, self.h, self.ho);
                for kx in 0..k {
                    let xs = self.valid(kx, self.w, self.wo);
                    let row = (c * k + ky) * k + kx;
                    let dst = &mut cols[row * ld + col0..row * ld + col0 + self.positions()];
                    dst[..ys.start * self.wo].fill(0.0);
                    dst[ys.end * self.wo..].fill(0.0);
                    for oy in ys.clone() {
                        let iy = oy * s + ky - self.padding;
                        let line = &mut dst[oy * self.wo..(oy + 1) * self.wo];
                        line[..xs.start].fill(0.0);
                        line[xs.end..].fill(0.0);
                        if xs.is_empty() {
                            continue;
                        }
                        let ix0 = xs.start * s + kx - self.padding;
                        let src = &plane[iy * self.w + ix0..(iy + 1) * self.w];
                        let line = &mut line[xs.clone()];
                        if s == 1 {
                            line.copy_from_slice(&src[..line.len()]);
                        } else {
                            for (v, x) in line.iter_mut().zip(src.iter().step_by(s)) {
                                *v = *x;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes `count` images of `x` (one image after another) side by side as the columns of
    /// `cols [rows, count·positions]`.
    fn im2col_images(&self, x: &[f32], count: usize, cols: &mut [f32]) {
        let ld = count * self.positions();
        for (j, img) in x.chunks_exact(self.in_size()).take(count).enumerate() {
            self.im2col(img, cols, ld, j * self.positions());
        }
    }

    /// Adds the columns of `cols [rows, count·positions]` back onto `count` images of `x`.
    fn col2im_images(&self, cols: &[f32], count: usize, x: &mut [f32]) {
        let ld = count * self.positions();
        for (j, img) in x.chunks_exact_mut(self.in_size()).take(count).enumerate() {
            self.col2im(cols, ld, j * self.positions(), img);
        }
    }

    /// Adds columns `col0..col0 + positions` of `cols [rows, ld]` back onto image `x`.
    fn col2im(&self, cols: &[f32], ld: usize, col0: usize, x: &mut [f32]) {
        let (k, s) = (self.k, self.stride);
        for c in 0..self.ci {
            let plane = &mut x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                let ys = self.valid(ky, self.h, self.ho);
                for kx in 0..k {
                    let xs = self.valid(kx, self.w, self.wo);
                    if xs.is_empty() {
                        continue;
                    }
                    let row = (c * k + ky) * k + kx;
                    let src = &cols[row * ld + col0..row * ld + col0 + self.positions()];
                    for oy in ys.clone() {
                        let iy = oy * s + ky - self.padding;
                        let ix0 = xs.start * s + kx - self.padding;
                        let dst = &mut plane[iy * self.w + ix0..(iy + 1) * self.w];
                        let line = &src[oy * self.wo + xs.start..oy * self.wo + xs.end];
                        for (d, v) in dst.iter_mut().step_by(s).zip(line) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major matrix view for [`gemm`]: element `(i, j)` at `ptr[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn rows(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: ld,
            cs: 1,
        }
    }
    fn transposed(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: ld,
        }
    }
    /// Whether every element of an `m x n` view lies inside the slice.
    fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst [m, n] (row-major, leading dimension ld) = (accumulate ? dst : 0) + a [m, k] · b [k, n]`.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ld: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    threads: usize,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && (m == 0 || n == 0 || (m - 1) * ld + n <= dst.len()),
        "gemm operands out of bounds"
    );
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element the gemm reads or writes inside the
    // slices; `dst` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Copies image blocks `src[j] [c, p]` (j in 0..imgs) into `dst [c, imgs·p]`, or back.
fn pack(src: &[f32], imgs: usize, c: usize, p: usize, dst: &mut [f32]) {
    let ld = imgs * p;
    for j in 0..imgs {
        for ch in 0..c {
            dst[ch * ld + j * p..ch * ld + (j + 1) * p]
                .copy_from_slice(&src[(j * c + ch) * p..(j * c + ch + 1) * p]);
        }
    }
}

fn unpack(src: &[f32], imgs: usize, c: usize, p: usize, dst: &mut [f32]) {
    let ld = imgs * p;
    for j in 0..imgs {
        for ch in 0..c {
            dst[(j * c + ch) * p..(j * c + ch + 1) * p]
                .copy_from_slice(&src[ch * ld + j * p..ch * ld + (j + 1) * p]);
        }
    }
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

/// [`conv_forward`] by im2col and one gemm per chunk of images.
fn im2col_forward(g: &Geometry, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; g.n * g.out_size()];
    if y.is_empty() {
        return y;
    }
    let (per_task, gemm_threads) = split(g.n);
    let (rows, p, chunk) = (g.rows(), g.positions(), g.chunk());
    y.par_chunks_mut(per_task * g.out_size())
        .zip(x.par_chunks(per_task * g.in_size()))
        .for_each(|(y, x)| {
            let imgs = y.len() / g.out_size();
            with_scratch([rows * chunk * p, g.co * chunk * p], |[cols, out]| {
                for start in (0..imgs).step_by(chunk) {
                    let c = chunk.min(imgs - start);
                    let ld = c * p;
                    g.im2col_images(&x[start * g.in_size()..], c, cols);
                    gemm(
                        g.co,
                        ld,
                        rows,
                        out,
                        ld,
                        false,
                        Mat::rows(wt, rows),
                        Mat::rows(cols, ld),
                        gemm_threads,
                    );
                    let dst = &mut y[start * g.out_size()..(start + c) * g.out_size()];
                    unpack(out, c, g.co, p, dst);
                }
            })
        });
    y
}

/// `x [n, ci, h, w] = convᵀ(y [n, co, ho, wo], w [co, ci, k, k])` by one gemm per chunk and
/// col2im.
fn im2col_data(g: &Geometry, y: &[f32], wt: &[f32]) -> Vec<f32> {
    let mut x = vec![0f32; g.n * g.in_size()];
    if x.is_empty() {
        return x;
    }
    let (per_task, gemm_threads) = split(g.n);
    let (rows, p, chunk) = (g.rows(), g.positions(), g.chunk());
    x.par_chunks_mut(per_task * g.in_size())
        .zip(y.par_chunks(per_task * g.out_size()))
        .for_each(|(x, y)| {
            let imgs = x.len() / g.in_size();
            with_scratch([rows * chunk * p, g.co * chunk * p], |[cols, packed]| {
                for start in (0..imgs).step_by(chunk) {
                    let c = chunk.min(imgs - start);
                    let ld = c * p;
                    pack(
                        &y[start * g.out_size()..(start + c) * g.out_size()],
                        c,
                        g.co,
                        p,
                        packed,
                    );
                    gemm(
                        rows,
                        ld,
                        g.co,
                        cols,
                        ld,
                        false,
                        Mat::transposed(wt, rows),
                        Mat::rows(packed, ld),
                        gemm_threads,
                    );
                    g.col2im_images(cols, c, &mut x[start * g.in_size()..]);
                }
            })
        });
    x
}

/// `dw [co, ci, k, k] = Σ_images dy [co, ho·wo] · im2col(x)ᵀ`.
fn im2col_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (rows, p, chunk) = (g.rows(), g.positions(), g.chunk());
    let size = g.co * rows;
    if g.n == 0 || size == 0 {
        return vec![0f32; size];
    }
    let (per_task, gemm_threads) = split(g.n);
    let partial: Vec<Vec<f32>> = x
        .par_chunks(per_task * g.in_size())
        .zip(dy.par_chunks(per_task * g.out_size()))
        .map(|(x, dy)| {
            let imgs = x.len() / g.in_size();
            let mut dw = vec![0f32; size];
            with_scratch([rows * chunk * p, g.co * chunk * p], |[cols, packed]| {
                for start in (0..imgs).step_by(chunk) {
                    let c = chunk.min(imgs - start);
                    let ld = c * p;
                    g.im2col_images(&x[start * g.in_size()..], c, cols);
                    pack(
                        &dy[start * g.out_size()..(start + c) * g.out_size()],
                        c,
                        g.co,
                        p,
                        packed,
                    );
                    gemm(
                        g.co,
                        rows,
                        ld,
                        &mut dw,
                        rows,
                        start > 0,
                        Mat::rows(packed, ld),
                        Mat::transposed(cols, ld),
                        gemm_threads,
                    );
                }
            });
            dw
        })
        .collect();
    sum_parts(partial, size)
}

/// The element-wise sum of the threads' partial results (`size` zeros if there are none).
fn sum_parts(parts: Vec<Vec<f32>>, size: usize) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; size]);
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    sum
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rejects_misfits() {
        assert!(Geometry::new((1, 3, 8, 8), (4, 2, 3, 3), 1, 0).is_err());
        assert!(Geometry::new((1, 3, 2, 2), (4, 3, 5, 5), 1, 0).is_err());
        assert!(Geometry::new((1, 3, 8, 8), (4, 3, 3, 3), 0, 0).is_err());
        let g = Geometry::new((2, 3, 28, 28), (8, 3, 4, 4), 2, 1).unwrap();
        assert_eq!((g.ho, g.wo, g.rows()), (14, 14, 48));
    }

    #[test]
    fn im2col_then_col2im_counts_overlaps() {
        // col2im(im2col(ones)) counts how many windows cover each pixel.
        let g = Geometry::new((1, 1, 4, 4), (1, 1, 2, 2), 2, 0).unwrap();
        let mut cols = vec![0f32; g.rows() * g.positions()];
        g.im2col(&[1.0; 16], &mut cols, g.positions(), 0);
        let mut back = vec![0f32; 16];
        g.col2im(&cols, g.positions(), 0, &mut back);
        assert_eq!(back, vec![1.0; 16]); // stride = kernel: each pixel in exactly one window
        let g = Geometry::new((1, 1, 3, 3), (1, 1, 2, 2), 1, 0).unwrap();
        let mut cols = vec![0f32; g.rows() * g.positions()];
        g.im2col(&[1.0; 9], &mut cols, g.positions(), 0);
        let mut back = vec![0f32; 9];
        g.col2im(&cols, g.positions(), 0, &mut back);
        assert_eq!(back, vec![1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    }
}
