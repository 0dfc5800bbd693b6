//! Fast CPU kernels for the layers of `dcgan28`, as candle custom ops with backward passes.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cdcgan_nn::kernels;
//!
//! let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &Device::Cpu)?;
//! let w = Tensor::randn(0f32, 1., (5, 3, 4, 4), &Device::Cpu)?;
//! let y = kernels::conv2d(&x, &w, 2, 1)?; // stride 2, padding 1
//! assert_eq!(y.dims(), &[2, 5, 4, 4]);
//! let stock = x.conv2d(&w, 1, 2, 1, 1)?;
//! let diff = (y - stock)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-4);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Three convolution kernels cover a convolution and its transpose, forward and backward:
//!
//! | kernel        | computes                          | used for                                  |
//! |---------------|-----------------------------------|-------------------------------------------|
//! | `Conv`        | `y = W ⋆ x`                       | conv forward, transposed-conv input grad  |
//! | `ConvData`    | `x = Wᵀ ⋆ y` (col2im, no zeros)   | conv input grad, transposed-conv forward  |
//! | `ConvWeight`  | `dW = dy ⋆ x` summed over images  | the weight gradient of both               |
//!
//! Each works on a chunk of images at once (columns of several images side by side) so the
//! gemm is large enough to run near peak, and splits the batch across rayon's threads.
//! Scratch buffers are thread-local and reused between calls; they are lent out whole for the
//! duration of a kernel's work, never borrowed across a call that may run rayon work. Convolutions with a 4x4
//! kernel, stride 2, padding 1 and at least 16 channels a side (`dcgan28`'s deconv1 and conv2)
//! take Winograd F(4x4, 2x2) instead of im2col in all three kernels: about half the
//! multiply-adds.
//!
//! [`batch_norm`] normalises with batch or running statistics and applies the following
//! activation in the same pass; its backward is two passes over the batch. [`add_bias`]
//! adds a per-channel bias and sums its gradient per channel in one pass; [`add_bias_act`]
//! applies the activation in the same pass. [`power_iteration`] and [`spectral_divide`] are
//! spectral normalisation's estimate and division, each one pass over the weight.
//!
//! Any other device or dtype falls back to candle's own ops, so GPU builds keep working;
//! [`set_fast_kernels`] switches the fast path off for comparisons.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, DType, Layout, Tensor};
use rayon::prelude::*;

mod act;
mod bias;
mod conv;
mod norm;
mod spectral;

pub use act::{Activation, gather_add_act};
pub use bias::{add_bias, add_bias_act};
pub use conv::{conv_transpose2d, conv2d};
pub use norm::{batch_norm, channel_stats};
pub use spectral::{SN_EPS, SpectralEstimate, power_iteration, spectral_divide};

type CResult<T> = candle_core::Result<T>;

static FAST: AtomicBool = AtomicBool::new(true);

/// Turns the fast CPU kernels on (the default) or off for the whole process; off means
/// candle's stock ops everywhere, which is what benchmarks compare against.
pub fn set_fast_kernels(on: bool) {
    FAST.store(on, Ordering::Relaxed);
}

/// Whether the fast CPU kernels are on.
pub fn fast_kernels() -> bool {
    FAST.load(Ordering::Relaxed)
}

pub(crate) fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    fast_kernels() && x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// `len` values made in parallel, `chunk` at a time: chunk `k` (from element `k·chunk`) takes
/// the values of `values(k)`, then `tail` follows. Each element is written once, where
/// `vec![0.0; len]` and a pass of writes would write it twice (a whole pass over memory for
/// an element-wise kernel).
///
/// # Panics
/// If `values(k)` yields fewer values than chunk `k` holds (a bug in the caller).
pub(crate) fn par_fill<I: Iterator<Item = f32>>(
    len: usize,
    chunk: usize,
    values: impl Fn(usize) -> I + Sync,
    tail: &[f32],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len + tail.len());
    if len > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(k, slots): (usize, &mut [MaybeUninit<f32>])| {
                let written = slots
                    .iter_mut()
                    .zip(values(k))
                    .map(|(slot, v)| *slot = MaybeUninit::new(v))
                    .count();
                assert_eq!(written, slots.len(), "par_fill: chunk {k} left unwritten");
            });
    }
    // SAFETY: every chunk of the first `len` elements was written in full (asserted above; a
    // failed assertion panics before this line), and the capacity holds `len`.
    unsafe { out.set_len(len) };
    out.extend_from_slice(tail);
    out
}

/// `len` values made in parallel, `chunk` at a time: chunk `k` (from element `k·chunk`) is
/// zeroed and handed to `fill(k, chunk)` by the same worker. It replaces `vec![0.0; len]`
/// followed by a parallel pass over its chunks, where the zeroing ran on the calling thread
/// alone, over the whole buffer, while the pool waited: up to a tenth of a training step's
/// CPU time at batch 32, serial. Here each chunk is zeroed in parallel, just before it is
/// written, while it is in cache.
pub(crate) fn par_zeroed(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(k, slots): (usize, &mut [MaybeUninit<f32>])| {
            for slot in slots.iter_mut() {
                slot.write(0.0);
            }
            // SAFETY: every element of `slots` was just written, and `MaybeUninit<f32>` has
            // the layout of `f32`.
            let zeroed = unsafe { &mut *(slots as *mut [MaybeUninit<f32>] as *mut [f32]) };
            fill(k, zeroed);
        });
    // SAFETY: the chunks cover the first `len` elements, and each was written in full
    // before `fill` ran; a panic in `fill` propagates before this line.
    unsafe { out.set_len(len) };
    out
}

/// Splits `n` images into one contiguous range per worker; returns (images per task, gemm
/// threads). With fewer images than threads, each task's gemm gets its share of the spare
/// threads (`threads / tasks`, rounded up), not the whole pool: three images on 16 threads
/// run three gemms of 6 threads, not of 16.
pub(crate) fn split(n: usize) -> (usize, usize) {
    split_by(n, 1)
}

/// [`split`] in whole groups of `unit` images (the last task may hold fewer): the Winograd
/// kernels handle 16 images per SIMD lane group, so a task of 4 images would compute 16
/// lanes for 4 of them. With fewer groups than threads, each gemm gets the spare threads.
pub(crate) fn split_by(n: usize, unit: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let unit = unit.max(1);
    let units = n.div_ceil(unit).max(1);
    let per_task = units.div_ceil(threads.min(units)) * unit;
    let tasks = n.div_ceil(per_task).max(1);
    (per_task, threads.div_ceil(tasks))
}

std::thread_local! {
    /// Reusable scratch buffers of this thread, lent out whole by [`with_scratch`].
    static SCRATCH: Cell<Vec<Vec<f32>>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on `N` scratch slices of the given lengths, reused between calls on a thread.
///
/// The buffers are taken out of the thread-local before `f` runs and put back after it, so
/// nothing is borrowed while `f` works. That matters: `f` may call a parallel gemm, and a
/// rayon worker that waits inside it steals other tasks, which may call `with_scratch` again
/// on the same thread. Such a nested call finds the pool empty and allocates its own buffers
/// (its contents are not zeroed between uses; callers write before they read).
pub(crate) fn with_scratch<const N: usize, R>(
    sizes: [usize; N],
    f: impl FnOnce([&mut [f32]; N]) -> R,
) -> R {
    let mut pool = SCRATCH.with(Cell::take);
    let mut bufs: [Vec<f32>; N] = std::array::from_fn(|_| pool.pop().unwrap_or_default());
    for (buf, &len) in bufs.iter_mut().zip(&sizes) {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let mut lens = sizes.into_iter();
    let out = f(bufs.each_mut().map(|buf| {
        let len = lens.next().unwrap_or(0);
        &mut buf[..len]
    }));
    // Back in reverse, so the next call pops each buffer for the same role. Whatever a nested
    // call left in the pool meanwhile is dropped in favour of these.
    pool.extend(bufs.into_iter().rev());
    SCRATCH.with(|s| s.set(pool));
    out
}

/// The f32 values a contiguous layout covers, for a custom op's `cpu_fwd`; `what` names the
/// operand in the error otherwise.
pub fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: expects a contiguous tensor"),
        _ => candle_core::bail!("{what}: expects f32 data"),
    }
}

/// [`contiguous_f32`] for the storage an in-place op writes.
pub fn contiguous_f32_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> CResult<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: expects a contiguous tensor"),
        _ => candle_core::bail!("{what}: expects f32 data"),
    }
}

pub(crate) fn dims4(l: &Layout, what: &str) -> CResult<(usize, usize, usize, usize)> {
    l.shape().dims4().map_err(|_| {
        candle_core::Error::Msg(format!("{what}: expects a 4-d tensor, got {:?}", l.dims()))
    })
}

#[cfg(test)]
mod tests {
    use super::{par_fill, par_zeroed};

    #[test]
    fn splits_cover_the_batch_in_whole_units_and_share_the_threads() {
        let on = |threads: usize, n: usize, unit: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| super::split_by(n, unit))
        };
        // (threads, images, unit) -> (images per task, gemm threads)
        for (threads, n, unit, want) in [
            (2, 32, 16, (16, 1)),
            (2, 64, 16, (32, 1)),
            (2, 40, 16, (32, 1)),
            (8, 32, 16, (16, 4)),
            (8, 64, 16, (16, 2)),
            (16, 3, 1, (1, 6)),
            (8, 3, 16, (16, 8)),
            (1, 7, 1, (7, 1)),
            (4, 0, 1, (1, 4)),
        ] {
            assert_eq!(
                on(threads, n, unit),
                want,
                "{threads} threads, {n} images, unit {unit}"
            );
        }
    }

    #[test]
    fn par_fill_writes_every_chunk_then_the_tail() {
        // 10 elements in chunks of 4: the last chunk is short.
        let v = par_fill(
            10,
            4,
            |k| (0..4).map(move |i| (k * 4 + i) as f32),
            &[-1.0, -2.0],
        );
        let want: Vec<f32> = (0..10).map(|i| i as f32).chain([-1.0, -2.0]).collect();
        assert_eq!(v, want);
        assert_eq!(par_fill(0, 4, |_| std::iter::empty(), &[3.0]), vec![3.0]);
    }

    #[test]
    fn par_zeroed_hands_each_chunk_zeroed_with_its_index() {
        // 10 elements in chunks of 4 on a pool larger than the machine: the last is short,
        // and the fill leaves element 1 of each chunk alone, which must read zero.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .unwrap();
        let v = pool.install(|| {
            par_zeroed(10, 4, |k, chunk| {
                assert!(chunk.iter().all(|v| *v == 0.0), "chunk {k} not zeroed");
                for (i, v) in chunk.iter_mut().enumerate().filter(|(i, _)| *i != 1) {
                    *v = (10 * k + i) as f32;
                }
            })
        });
        assert_eq!(v, [0., 0., 2., 3., 10., 0., 12., 13., 20., 0.]);
        assert!(par_zeroed(0, 4, |_, _| unreachable!()).is_empty());
    }

    #[test]
    #[should_panic(expected = "left unwritten")]
    fn par_fill_refuses_a_chunk_left_short() {
        par_fill(
            8,
            4,
            |k| (0..if k == 1 { 3 } else { 4 }).map(|i| i as f32),
            &[],
        );
    }
}
