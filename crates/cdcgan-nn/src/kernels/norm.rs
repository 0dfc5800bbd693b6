//! BatchNorm with the following activation fused in, forward and backward in few passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{Activation, CResult, contiguous_f32, fast_path, par_fill, split};

/// Per-channel mean and biased variance of `x [n, c, ...]`, as `[2, c]`; not differentiable.
pub fn channel_stats(x: &Tensor) -> CResult<Tensor> {
    if !fast_path(x, x) {
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        let flat = x.reshape((n, c, ()))?.transpose(0, 1)?.flatten_from(1)?;
        let mean = flat.mean_keepdim(1)?;
        let var = flat.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
        return Tensor::cat(&[mean.t()?, var.t()?], 0)?
            .detach()
            .contiguous();
    }
    x.contiguous()?.apply_op1_no_bwd(&Stats)
}

/// `act(gamma · (x - mean) / sqrt(var + eps) + beta)` per channel of `x [n, c, ...]`.
///
/// `stats` is `[2, c]` (mean, variance), e.g. from [`channel_stats`] or the running
/// statistics. With `batch_stats` the statistics are taken to be `x`'s own, and the gradient
/// flows through them as in training-mode BatchNorm; otherwise they are constants.
pub fn batch_norm(
    x: &Tensor,
    stats: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Activation,
    batch_stats: bool,
) -> CResult<Tensor> {
    let c = x.dim(1)?;
    if stats.dims() != [2, c] || gamma.dims() != [c] || beta.dims() != [c] {
        candle_core::bail!(
            "batch_norm: {c} channels but stats {:?}, gamma {:?}, beta {:?}",
            stats.dims(),
            gamma.dims(),
            beta.dims()
        )
    }
    if !fast_path(x, gamma) {
        let shape = channel_shape(x);
        let (mean, var) = if batch_stats {
            // Differentiable statistics so autograd sees the batch dependence.
            let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
            let mean = x.mean_keepdim(dims.as_slice())?;
            let var = x
                .broadcast_sub(&mean)?
                .sqr()?
                .mean_keepdim(dims.as_slice())?;
            (mean, var)
        } else {
            (
                stats.get(0)?.reshape(shape.as_slice())?,
                stats.get(1)?.reshape(shape.as_slice())?,
            )
        };
        let y = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&gamma.reshape(shape.as_slice())?)?
            .broadcast_add(&beta.reshape(shape.as_slice())?)?;
        return act.stock(&y);
    }
    let affine = Tensor::stack(&[gamma, beta], 0)?;
    x.contiguous()?.apply_op3(
        &stats.detach().contiguous()?,
        &affine,
        BatchNormOp {
            eps,
            act,
            batch_stats,
        },
    )
}

/// `[1, c, 1, ...]` for `x [n, c, ...]`: the shape a per-channel vector takes to broadcast
/// over `x` in the stock-op fallbacks.
pub(super) fn channel_shape(x: &Tensor) -> Vec<usize> {
    let mut shape = vec![1usize; x.rank()];
    if let Some(c) = shape.get_mut(1) {
        *c = x.dims()[1];
    }
    shape
}

/// `(n, c, positions per channel and image)` of a contiguous `[n, c, ...]` layout.
pub(super) fn ncp(l: &Layout, what: &str) -> CResult<(usize, usize, usize)> {
    let dims = l.dims();
    if dims.len() < 2 {
        candle_core::bail!("{what}: expects [n, c, ...], got {dims:?}")
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Per-channel `(Σ a, Σ b)` in f64 over `[n, c, p]` data, split across threads by image.
pub(super) fn channel_sums(
    n: usize,
    c: usize,
    f: impl Fn(usize, usize) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    let (per_task, _) = split(n);
    let tasks: Vec<usize> = (0..n).step_by(per_task.max(1)).collect();
    let partial: Vec<Vec<(f64, f64)>> = tasks
        .par_iter()
        .map(|&start| {
            let mut acc = vec![(0f64, 0f64); c];
            for img in start..(start + per_task).min(n) {
                for (ch, a) in acc.iter_mut().enumerate() {
                    let (s, t) = f(img, ch);
                    a.0 += s;
                    a.1 += t;
                }
            }
            acc
        })
        .collect();
    let mut sums = vec![(0f64, 0f64); c];
    for part in partial {
        for (s, p) in sums.iter_mut().zip(part) {
            s.0 += p.0;
            s.1 += p.1;
        }
    }
    sums
}

/// `(Σ f(e).0, Σ f(e).1)` over `v`, accumulated in eight f32 lanes (which the compiler can
/// vectorise, unlike one serial float sum) and returned as f64.
pub(super) fn lane_sums(v: &[f32], f: impl Fn(f32) -> (f32, f32)) -> (f64, f64) {
    lane_sums3(v, v, v, |e, _, _| f(e))
}

/// [`lane_sums`] over three slices of one length side by side: `Σ f(a[i], b[i], c[i])`.
fn lane_sums3(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    f: impl Fn(f32, f32, f32) -> (f32, f32),
) -> (f64, f64) {
    const L: usize = 8;
    let (mut s, mut t) = ([0f32; L], [0f32; L]);
    let (a8, b8, c8) = (a.chunks_exact(L), b.chunks_exact(L), c.chunks_exact(L));
    let tails = (a8.remainder(), b8.remainder(), c8.remainder());
    for ((a, b), c) in a8.zip(b8).zip(c8) {
        for l in 0..L {
            let (x, y) = f(a[l], b[l], c[l]);
            s[l] += x;
            t[l] += y;
        }
    }
    let (ta, tb, tc) = tails;
    for (l, ((&a, &b), &c)) in ta.iter().zip(tb).zip(tc).enumerate() {
        let (x, y) = f(a, b, c);
        s[l] += x;
        t[l] += y;
    }
    let total = |l: [f32; L]| l.iter().map(|&x| f64::from(x)).sum::<f64>();
    (total(s), total(t))
}

struct Stats;

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "cdcgan-channel-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l, self.name())?;
        let x = contiguous_f32(s, l, self.name())?;
        // Sum and sum of squares per channel, in f64 across planes. Within a plane (L1-hot)
        // they come from the corrected two-pass algorithm about the plane's rough mean, so a
        // channel whose mean is large against its spread keeps its variance, which
        // E[x²] - E[x]² in f32 loses to cancellation.
        let sums = channel_sums(n, c, |img, ch| {
            let v = &x[(img * c + ch) * p..(img * c + ch + 1) * p];
            let pf = p.max(1) as f64;
            let m = (lane_sums(v, |e| (e, 0.0)).0 / pf) as f32;
            let (d, d2) = lane_sums(v, |e| (e - m, (e - m) * (e - m)));
            let s = pf * f64::from(m) + d;
            (s, d2 - d * d / pf + s * s / pf)
        });
        let count = (n * p).max(1) as f64;
        let mut out = vec![0f32; 2 * c];
        for (ch, (s, q)) in sums.iter().enumerate() {
            let mean = s / count;
            out[ch] = mean as f32;
            out[c + ch] = (q / count - mean * mean).max(0.0) as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

struct BatchNormOp {
    eps: f64,
    act: Activation,
    batch_stats: bool,
}

/// Per-channel `(mean, 1/sqrt(var + eps))` from a `[2, c]` stats slice.
fn mean_invstd(stats: &[f32], c: usize, eps: f64) -> Vec<(f32, f32)> {
    (0..c)
        .map(|ch| {
            let inv = 1.0 / (f64::from(stats[c + ch]) + eps).sqrt();
            (stats[ch], inv as f32)
        })
        .collect()
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "cdcgan-batch-norm"
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
        let (_, c, p) = ncp(l1, self.name())?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let stats = contiguous_f32(s2, l2, self.name())?;
        let affine = contiguous_f32(s3, l3, self.name())?;
        if stats.len() != 2 * c || affine.len() != 2 * c {
            candle_core::bail!("{}: stats and affine must be [2, {c}]", self.name())
        }
        // y = x·scale + shift per channel.
        let ms = mean_invstd(stats, c, self.eps);
        let coef: Vec<(f32, f32)> = (0..c)
            .map(|ch| {
                let scale = affine[ch] * ms[ch].1;
                (scale, affine[c + ch] - ms[ch].0 * scale)
            })
            .collect();
        let act = self.act;
        // Chunk k is plane k: channel k % c.
        let y = par_fill(
            x.len(),
            p,
            |k| {
                let (scale, shift) = coef[k % c];
                x[k * p..(k + 1) * p]
                    .iter()
                    .map(move |&i| act.apply(i * scale + shift))
            },
            &[],
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        stats: &Tensor,
        affine: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(1)?;
        let op = BatchNormGrad {
            stats: stats.flatten_all()?.to_vec1()?,
            gamma: affine.get(0)?.to_vec1()?,
            eps: self.eps,
            act: self.act,
            batch_stats: self.batch_stats,
        };
        let flat = x.apply_op3_no_bwd(res, &grad.contiguous()?, &op)?;
        let len = x.elem_count();
        let dx = flat.narrow(0, 0, len)?.reshape(x.shape())?;
        let daffine = flat.narrow(0, len, 2 * c)?.reshape((2, c))?;
        Ok((
            x.track_op().then_some(dx),
            None,
            affine.track_op().then_some(daffine),
        ))
    }
}

/// The backward pass of [`BatchNormOp`]: `(x, y, dy) -> [dx…, dgamma…, dbeta…]` flattened.
struct BatchNormGrad {
    stats: Vec<f32>,
    gamma: Vec<f32>,
    eps: f64,
    act: Activation,
    batch_stats: bool,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "cdcgan-batch-norm-grad"
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
        let (n, c, p) = ncp(l1, self.name())?;
        let x = contiguous_f32(s1, l1, self.name())?;
        let y = contiguous_f32(s2, l2, self.name())?;
        let dy = contiguous_f32(s3, l3, self.name())?;
        if y.len() != x.len() || dy.len() != x.len() || self.gamma.len() != c {
            candle_core::bail!("{}: operands do not match", self.name())
        }
        let ms = mean_invstd(&self.stats, c, self.eps);
        let act = self.act;
        // Σ g and Σ g·x̂ per channel, where g = dy · act'(y).
        let sums = channel_sums(n, c, |img, ch| {
            let o = (img * c + ch) * p;
            let (mean, inv) = ms[ch];
            let r = o..o + p;
            let (sg, sgx) = lane_sums3(&x[r.clone()], &y[r.clone()], &dy[r], |xi, yi, di| {
                let g = di * act.slope_at_output(yi);
                (g, g * (xi - mean))
            });
            (sg, sgx * f64::from(inv))
        });
        let count = (n * p).max(1) as f32;
        // dx = k·(g - mean(g) - x̂·mean(g·x̂)) with k = gamma·inv and x̂ = (x - mean)·inv,
        // written as k·g - b - a·(x - mean); the means vanish with constant statistics.
        let coef: Vec<(f32, f32, f32, f32)> = (0..c)
            .map(|ch| {
                let (mean, inv) = ms[ch];
                let k = self.gamma[ch] * inv;
                if self.batch_stats {
                    let mg = sums[ch].0 as f32 / count;
                    let mgx = sums[ch].1 as f32 / count;
                    (k, mean, k * mgx * inv, k * mg)
                } else {
                    (k, mean, 0.0, 0.0)
                }
            })
            .collect();
        let tail: Vec<f32> = (sums.iter().map(|s| s.1 as f32))
            .chain(sums.iter().map(|s| s.0 as f32))
            .collect();
        // Chunk `plane` is plane `plane`: channel `plane % c`.
        let out =
            par_fill(
                x.len(),
                p,
                |plane| {
                    let (k, mean, a, b) = coef[plane % c];
                    let r = plane * p..(plane + 1) * p;
                    x[r.clone()].iter().zip(&y[r.clone()]).zip(&dy[r]).map(
                        move |((&xi, &yi), &di)| {
                            k * (di * act.slope_at_output(yi)) - b - a * (xi - mean)
                        },
                    )
                },
                &tail,
            );
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}
