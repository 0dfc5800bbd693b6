//! The fast convolution kernels against candle's reference ops and finite differences.

use candle_core::{Device, Tensor, Var};
use cdcgan_nn::kernels::{self, Activation};
use proptest::prelude::*;

const DEV: Device = Device::Cpu;

/// `max |a - b| / max(1, max |b|)`.
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.max(1.0)
}

fn seeded(seed: u64, shape: &[usize]) -> Tensor {
    // A cheap deterministic generator: candle's CPU randn cannot be seeded.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &DEV).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    ci: usize,
    co: usize,
    k: usize,
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..5,
        1usize..5,
        1usize..6,
        1usize..6,
        1usize..4,
        any::<u64>(),
    )
        .prop_flat_map(|(n, ci, co, k, stride, seed)| {
            (0..k, k..k + 9, k..k + 9).prop_map(move |(padding, h, w)| Case {
                n,
                ci,
                co,
                k,
                stride,
                padding,
                h,
                w,
                seed,
            })
        })
}

/// Output, input gradient and weight gradient of `loss = Σ f(x, w) · r`.
fn run(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    seed: u64,
) -> (Tensor, Tensor, Tensor) {
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let y = f(xv.as_tensor(), wv.as_tensor()).unwrap();
    let r = seeded(seed ^ 0xabcd, y.dims());
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(xv.as_tensor()).unwrap().clone();
    let dw = grads.get(wv.as_tensor()).unwrap().clone();
    (y, dx, dw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_matches_candle(c in case()) {
        // candle's conv2d backward derives the output padding of both sides from the
        // height alone, so its input gradient has the wrong width when the two sides leave
        // different remainders; ours is checked on such shapes by finite differences.
        let rem = |s: usize| (s + 2 * c.padding - c.k) % c.stride;
        prop_assume!(rem(c.h) == rem(c.w));
        let x = seeded(c.seed, &[c.n, c.ci, c.h, c.w]);
        let w = seeded(c.seed + 1, &[c.co, c.ci, c.k, c.k]);
        let ours = run(|x, w| kernels::conv2d(x, w, c.stride, c.padding), &x, &w, c.seed);
        let stock = run(|x, w| x.conv2d(w, c.padding, c.stride, 1, 1), &x, &w, c.seed);
        prop_assert!(rel_err(&ours.0, &stock.0) < 1e-4, "forward {c:?}");
        prop_assert!(rel_err(&ours.1, &stock.1) < 1e-4, "input grad {c:?}");
        prop_assert!(rel_err(&ours.2, &stock.2) < 1e-4, "weight grad {c:?}");
    }

    #[test]
    fn conv_transpose2d_matches_candle(c in case(), extra in 0usize..3) {
        // As a transposed conv: input [n, ci, h, w], weight [ci, co, k, k].
        let output_padding = extra % c.stride;
        let (h, w) = (c.h - c.k + 1, c.w - c.k + 1);
        let x = seeded(c.seed, &[c.n, c.ci, h, w]);
        let wt = seeded(c.seed + 1, &[c.ci, c.co, c.k, c.k]);
        // Both output sides must be at least one pixel.
        let side = |s: usize| (s - 1) * c.stride + c.k + output_padding;
        prop_assume!(side(h).min(side(w)) > 2 * c.padding);
        let ours = run(
            |x, w| kernels::conv_transpose2d(x, w, c.stride, c.padding, output_padding),
            &x, &wt, c.seed,
        );
        let stock = run(
            |x, w| x.conv_transpose2d(w, c.padding, output_padding, c.stride, 1),
            &x, &wt, c.seed,
        );
        prop_assert!(rel_err(&ours.0, &stock.0) < 1e-4, "forward {c:?}");
        prop_assert!(rel_err(&ours.1, &stock.1) < 1e-4, "input grad {c:?}");
        prop_assert!(rel_err(&ours.2, &stock.2) < 1e-4, "weight grad {c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// 4x4 kernels, stride 2, padding 1 and at least 16 channels each side: the shapes the
    /// Winograd kernels take (`dcgan28`'s deconv1 and conv2), odd and even sides.
    #[test]
    fn winograd_shapes_match_candle(
        n in 1usize..4,
        small in 16usize..20,
        large in 16usize..24,
        h in 2usize..16,
        w in 2usize..16,
        seed in any::<u64>(),
    ) {
        // candle's conv2d backward needs both sides to leave the same remainder (see above).
        let w = if (h + w) % 2 == 0 { w } else { w + 1 };
        let x = seeded(seed, &[n, small, h, w]);
        let wt = seeded(seed + 1, &[large, small, 4, 4]);
        let ours = run(|x, w| kernels::conv2d(x, w, 2, 1), &x, &wt, seed);
        let stock = run(|x, w| x.conv2d(w, 1, 2, 1, 1), &x, &wt, seed);
        for (what, a, b) in [("forward", &ours.0, &stock.0), ("input grad", &ours.1, &stock.1), ("weight grad", &ours.2, &stock.2)] {
            prop_assert!(rel_err(a, b) < 1e-4, "conv2d {what}: n {n} {small}->{large} {h}x{w}");
        }
        // The transposed conv of the conv's output shape back to [n, small, h', w'].
        let y = seeded(seed + 2, &[n, large, h / 2, w / 2]);
        let ours = run(|x, w| kernels::conv_transpose2d(x, w, 2, 1, 0), &y, &wt, seed);
        let stock = run(|x, w| x.conv_transpose2d(w, 1, 0, 2, 1), &y, &wt, seed);
        for (what, a, b) in [("forward", &ours.0, &stock.0), ("input grad", &ours.1, &stock.1), ("weight grad", &ours.2, &stock.2)] {
            prop_assert!(rel_err(a, b) < 1e-4, "conv_transpose2d {what}: n {n} {large}->{small} {h}x{w}");
        }
    }
}

/// Central differences of `loss = Σ f(x, w) · r` for every element of `x` and `w`.
///
/// A convolution is linear in each argument, so the difference quotient is exact up to
/// rounding whatever the step: this checks the gradients independently of candle.
fn finite_difference_check(
    x_shape: &[usize],
    w_shape: &[usize],
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
) {
    let x = seeded(7, x_shape);
    let w = seeded(8, w_shape);
    let (y, dx, dw) = run(&f, &x, &w, 9);
    let r = seeded(9 ^ 0xabcd, y.dims());
    let loss = |x: &Tensor, w: &Tensor| -> f32 {
        let y = f(x, w).unwrap();
        (&y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let eps = 0.5f32;
    for (which, t, grad) in [(0, &x, &dx), (1, &w, &dw)] {
        let base = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let g = grad.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..base.len() {
            let nudged = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                Tensor::from_vec(v, t.dims(), &DEV).unwrap()
            };
            let (plus, minus) = if which == 0 {
                (loss(&nudged(eps), &w), loss(&nudged(-eps), &w))
            } else {
                (loss(&x, &nudged(eps)), loss(&x, &nudged(-eps)))
            };
            let numeric = (plus - minus) / (2.0 * eps);
            assert!(
                (numeric - g[i]).abs() <= 1e-3 * g[i].abs().max(1.0),
                "arg {which} element {i}: numeric {numeric}, backward {}",
                g[i]
            );
        }
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    // Non-square, with sides that leave different remainders under stride 2. The weight
    // [3, 2, 3, 3] is [out, in, k, k]: two input channels, so x is cut to two.
    finite_difference_check(&[2, 3, 6, 5], &[3, 2, 3, 3], |x, w| {
        let x = x.narrow(1, 0, 2)?;
        kernels::conv2d(&x, w, 2, 1)
    });
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    // x [2, 3, 6, 5] with weight [3 in, 2 out, 3, 3], stride 2, padding 1, output padding 1.
    finite_difference_check(&[2, 3, 6, 5], &[3, 2, 3, 3], |x, w| {
        kernels::conv_transpose2d(x, w, 2, 1, 1)
    });
}

#[test]
fn winograd_gradients_match_finite_differences() {
    // 4x4, stride 2, padding 1, 16 channels a side: the Winograd kernels, odd and even sides.
    finite_difference_check(&[1, 16, 6, 5], &[16, 16, 4, 4], |x, w| {
        kernels::conv2d(x, w, 2, 1)
    });
    finite_difference_check(&[1, 16, 3, 4], &[16, 16, 4, 4], |x, w| {
        kernels::conv_transpose2d(x, w, 2, 1, 1)
    });
}

#[test]
fn large_batches_split_across_threads_agree_with_candle() {
    // dcgan28's deconv1 and conv2 shapes at a batch that spans several chunks and threads.
    let x = seeded(1, &[37, 32, 7, 7]);
    let w = seeded(2, &[32, 16, 4, 4]);
    let ours = run(|x, w| kernels::conv_transpose2d(x, w, 2, 1, 0), &x, &w, 3);
    let stock = run(|x, w| x.conv_transpose2d(w, 1, 0, 2, 1), &x, &w, 3);
    for (a, b) in [
        (&ours.0, &stock.0),
        (&ours.1, &stock.1),
        (&ours.2, &stock.2),
    ] {
        assert!(rel_err(a, b) < 1e-4);
    }
    let x = seeded(4, &[37, 16, 14, 14]);
    let w = seeded(5, &[24, 16, 4, 4]);
    let ours = run(|x, w| kernels::conv2d(x, w, 2, 1), &x, &w, 6);
    let stock = run(|x, w| x.conv2d(w, 1, 2, 1, 1), &x, &w, 6);
    for (a, b) in [
        (&ours.0, &stock.0),
        (&ours.1, &stock.1),
        (&ours.2, &stock.2),
    ] {
        assert!(rel_err(a, b) < 1e-4);
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let x = seeded(1, &[2, 3, 8, 8]);
    assert!(kernels::conv2d(&x, &seeded(2, &[4, 2, 3, 3]), 1, 0).is_err());
    assert!(kernels::conv2d(&x, &seeded(2, &[4, 3, 9, 9]), 1, 0).is_err());
    assert!(kernels::conv2d(&x, &seeded(2, &[4, 3, 3, 3]), 0, 0).is_err());
    assert!(kernels::conv_transpose2d(&x, &seeded(2, &[2, 4, 3, 3]), 2, 0, 0).is_err());
    assert!(kernels::conv_transpose2d(&x, &seeded(2, &[3, 4, 3, 3]), 2, 0, 2).is_err());
    // An empty output side.
    let x = seeded(1, &[1, 1, 2, 1]);
    assert!(kernels::conv_transpose2d(&x, &seeded(2, &[1, 1, 2, 2]), 1, 1, 0).is_err());
}

/// Training- or eval-mode BatchNorm plus activation from candle's own ops.
fn reference_bn(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Option<&Tensor>,
    act: Activation,
) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let (mean, var) = match stats {
        None => {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
            (mean, var)
        }
        Some(s) => (
            s.get(0)?.reshape((1, c, 1, 1))?,
            s.get(1)?.reshape((1, c, 1, 1))?,
        ),
    };
    let y = x
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    match act {
        Activation::Identity => Ok(y),
        Activation::Relu => y.relu(),
        Activation::LeakyRelu(s) => candle_nn::ops::leaky_relu(&y, f64::from(s)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn batch_norm_matches_reference(
        n in 1usize..6, c in 1usize..5, side in 1usize..6, seed in any::<u64>(),
        act_kind in 0usize..3, train in any::<bool>(),
    ) {
        prop_assume!(n * side * side > 1);
        let act = [Activation::Identity, Activation::Relu, Activation::LeakyRelu(0.2)][act_kind];
        let x = (seeded(seed, &[n, c, side, side]) * 3.0).unwrap();
        // A channel whose few values nearly coincide is ill-conditioned for any f32 BatchNorm
        // (x - mean keeps few significant bits, and training mode divides by that spread), so
        // the two implementations may rightly differ there; the statistics themselves are
        // checked on such channels by `channel_stats_keep_a_small_spread_under_a_large_mean`.
        let min_var = kernels::channel_stats(&x).unwrap().get(1).unwrap().min(0).unwrap();
        prop_assume!(min_var.to_scalar::<f32>().unwrap() > 0.1);
        let gamma = Var::from_tensor(&(seeded(seed + 1, &[c]) + 1.0).unwrap()).unwrap();
        let beta = Var::from_tensor(&seeded(seed + 2, &[c])).unwrap();
        let running = Tensor::stack(
            &[seeded(seed + 3, &[c]), (seeded(seed + 4, &[c]).abs().unwrap() + 0.5).unwrap()],
            0,
        )
        .unwrap();
        let run_bn = |fast: bool| {
            let xv = Var::from_tensor(&x).unwrap();
            let y = if fast {
                let stats = if train { kernels::channel_stats(&x).unwrap() } else { running.clone() };
                kernels::batch_norm(
                    xv.as_tensor(), &stats, gamma.as_tensor(), beta.as_tensor(), 1e-5, act, train,
                )
                .unwrap()
            } else {
                let stats = (!train).then_some(&running);
                reference_bn(xv.as_tensor(), gamma.as_tensor(), beta.as_tensor(), stats, act)
                    .unwrap()
            };
            let r = seeded(seed ^ 0x55, y.dims());
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let get = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
            (y, get(&xv), get(&gamma), get(&beta))
        };
        let (ours, reference) = (run_bn(true), run_bn(false));
        prop_assert!(rel_err(&ours.0, &reference.0) < 1e-4, "forward");
        prop_assert!(rel_err(&ours.1, &reference.1) < 1e-4, "input grad");
        prop_assert!(rel_err(&ours.2, &reference.2) < 1e-4, "gamma grad");
        prop_assert!(rel_err(&ours.3, &reference.3) < 1e-4, "beta grad");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn add_bias_act_matches_broadcast_add_then_the_activation(
        n in 1usize..5, c in 1usize..6, h in 1usize..9, w in 1usize..9, seed in any::<u64>(),
        act in prop_oneof![
            Just(Activation::Identity), Just(Activation::Relu), Just(Activation::LeakyRelu(0.2))
        ],
    ) {
        let x = seeded(seed, &[n, c, h, w]);
        let b = seeded(seed + 1, &[c]);
        let run = |fast: bool| {
            let (xv, bv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&b).unwrap());
            let y = if fast {
                kernels::add_bias_act(xv.as_tensor(), bv.as_tensor(), act).unwrap()
            } else {
                let col = bv.as_tensor().reshape((1, c, 1, 1)).unwrap();
                let sum = xv.as_tensor().broadcast_add(&col).unwrap();
                match act {
                    Activation::Identity => sum,
                    Activation::Relu => sum.relu().unwrap(),
                    Activation::LeakyRelu(s) => {
                        sum.maximum(&(&sum * f64::from(s)).unwrap()).unwrap()
                    }
                }
            };
            let r = seeded(seed ^ 0x33, y.dims());
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let get = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
            (y, get(&xv), get(&bv))
        };
        let (ours, reference) = (run(true), run(false));
        prop_assert!(rel_err(&ours.0, &reference.0) < 1e-6, "forward");
        prop_assert!(rel_err(&ours.1, &reference.1) < 1e-6, "input grad");
        prop_assert!(rel_err(&ours.2, &reference.2) < 1e-5, "bias grad");
    }
}

#[test]
fn add_bias_refuses_a_bias_of_the_wrong_size() {
    let err = kernels::add_bias(&seeded(1, &[2, 3, 4, 4]), &seeded(2, &[4])).unwrap_err();
    assert!(err.to_string().contains("3 channels"), "{err}");
}

#[test]
fn channel_stats_keep_a_small_spread_under_a_large_mean() {
    // E[x²] - E[x]² in f32 loses such a variance entirely; the exact values come from f64.
    let (n, c, p) = (3, 2, 49);
    let noise = seeded(9, &[n, c, p]).to_vec3::<f32>().unwrap();
    let offsets = [1000f32, -300.0];
    let values: Vec<f32> = (0..n * c * p)
        .map(|i| offsets[(i / p) % c] + 0.01 * noise[i / (c * p)][(i / p) % c][i % p])
        .collect();
    let x = Tensor::from_vec(values.clone(), (n, c, 7, 7), &DEV).unwrap();
    let s = kernels::channel_stats(&x)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for ch in 0..c {
        let v: Vec<f64> = (0..n)
            .flat_map(|img| &values[(img * c + ch) * p..(img * c + ch + 1) * p])
            .map(|&e| f64::from(e))
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            (f64::from(s[0][ch]) - mean).abs() < 1e-4,
            "channel {ch} mean"
        );
        let rel = (f64::from(s[1][ch]) - var).abs() / var;
        assert!(
            rel < 1e-4,
            "channel {ch}: variance {} against {var}",
            s[1][ch]
        );
    }
}

#[test]
fn channel_stats_are_mean_and_biased_variance() {
    let x = Tensor::from_vec(vec![1f32, 3., 10., 10., 5., 7., 20., 30.], (2, 2, 2), &DEV).unwrap();
    let s = kernels::channel_stats(&x)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // channel 0: 1, 3, 5, 7 -> mean 4, var 5; channel 1: 10, 10, 20, 30 -> mean 17.5, var 68.75
    assert_eq!(s, vec![vec![4.0, 17.5], vec![5.0, 68.75]]);
}
