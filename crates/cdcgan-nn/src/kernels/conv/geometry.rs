//! The shape of one convolution, and im2col / col2im over it.

use crate::kernels::CResult;

/// Columns (output positions of all images in a chunk) a gemm call aims for.
pub(super) const TARGET_COLUMNS: usize = 512;

/// The shape of one convolution: input `[n, ci, h, w]`, weight `[co, ci, k, k]`,
/// output `[n, co, ho, wo]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) n: usize,
    pub(super) ci: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) co: usize,
    pub(super) k: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
}

impl Geometry {
    pub(super) fn new(
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
    pub(super) fn rows(&self) -> usize {
        self.ci * self.k * self.k
    }
    /// Output positions per image.
    pub(super) fn positions(&self) -> usize {
        self.ho * self.wo
    }
    pub(super) fn in_size(&self) -> usize {
        self.ci * self.h * self.w
    }
    pub(super) fn out_size(&self) -> usize {
        self.co * self.positions()
    }
    /// Images per gemm call.
    pub(super) fn chunk(&self) -> usize {
        (TARGET_COLUMNS / self.positions().max(1)).clamp(1, self.n.max(1))
    }

    /// The output indices `o` in `0..outs` whose input `o·stride - padding + tap` lies in
    /// `0..side`, as a range (they are contiguous).
    pub(super) fn valid(&self, tap: usize, side: usize, outs: usize) -> std::ops::Range<usize> {
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
    pub(super) fn im2col(&self, x: &[f32], cols: &mut [f32], ld: usize, col0: usize) {
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
    pub(super) fn im2col_images(&self, x: &[f32], count: usize, cols: &mut [f32]) {
        let ld = count * self.positions();
        for (j, img) in x.chunks_exact(self.in_size()).take(count).enumerate() {
            self.im2col(img, cols, ld, j * self.positions());
        }
    }

    /// Adds the columns of `cols [rows, count·positions]` back onto `count` images of `x`.
    pub(super) fn col2im_images(&self, cols: &[f32], count: usize, x: &mut [f32]) {
        let ld = count * self.positions();
        for (j, img) in x.chunks_exact_mut(self.in_size()).take(count).enumerate() {
            self.col2im(cols, ld, j * self.positions(), img);
        }
    }

    /// Adds columns `col0..col0 + positions` of `cols [rows, ld]` back onto image `x`.
    pub(super) fn col2im(&self, cols: &[f32], ld: usize, col0: usize, x: &mut [f32]) {
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
