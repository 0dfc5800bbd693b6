//! Convolution, its data gradient and its weight gradient by im2col / col2im around one gemm
//! per chunk of images: the path for every shape Winograd does not take.

use rayon::prelude::*;

use super::gemm::{Mat, gemm, pack, unpack};
use super::geometry::Geometry;
use crate::kernels::{par_zeroed, split, with_scratch};

/// [`conv_forward`] by im2col and one gemm per chunk of images.
pub(super) fn im2col_forward(g: &Geometry, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let (per_task, gemm_threads) = split(g.n);
    let (rows, p, chunk) = (g.rows(), g.positions(), g.chunk());
    par_zeroed(g.n * g.out_size(), per_task * g.out_size(), |task, y| {
        let x = &x[task * per_task * g.in_size()..];
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
    })
}

/// `x [n, ci, h, w] = convᵀ(y [n, co, ho, wo], w [co, ci, k, k])` by one gemm per chunk and
/// col2im.
pub(super) fn im2col_data(g: &Geometry, y: &[f32], wt: &[f32]) -> Vec<f32> {
    let (per_task, gemm_threads) = split(g.n);
    let (rows, p, chunk) = (g.rows(), g.positions(), g.chunk());
    par_zeroed(g.n * g.in_size(), per_task * g.in_size(), |task, x| {
        let y = &y[task * per_task * g.out_size()..];
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
    })
}

/// `dw [co, ci, k, k] = Σ_images dy [co, ho·wo] · im2col(x)ᵀ`.
pub(super) fn im2col_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
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
pub(super) fn sum_parts(parts: Vec<Vec<f32>>, size: usize) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; size]);
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    sum
}
