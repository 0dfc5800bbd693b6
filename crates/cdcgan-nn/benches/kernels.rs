//! The fast kernels against candle's stock ops at `dcgan28`'s shapes, batch 128 (CPU).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use cdcgan_nn::kernels::{self, Activation};
use criterion::{Criterion, criterion_group};

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1., shape, &Device::Cpu).expect("randn")
}

/// Forward, and forward + backward, of `f` with both kernel sets.
fn pair(
    c: &mut Criterion,
    name: &str,
    x: &Tensor,
    w: &Tensor,
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    let (xv, wv) = (
        Var::from_tensor(x).expect("var"),
        Var::from_tensor(w).expect("var"),
    );
    for (label, fast) in [("cdcgan", true), ("candle", false)] {
        g.bench_function(format!("{label}/fwd"), |b| {
            kernels::set_fast_kernels(fast);
            b.iter(|| f(x, w).expect("forward"))
        });
        g.bench_function(format!("{label}/fwd+bwd"), |b| {
            kernels::set_fast_kernels(fast);
            b.iter(|| {
                let y = f(xv.as_tensor(), wv.as_tensor()).expect("forward");
                y.sum_all().and_then(|s| s.backward()).expect("backward")
            })
        });
    }
    kernels::set_fast_kernels(true);
    g.finish();
}

fn bench(c: &mut Criterion) {
    let b = 128;
    pair(
        c,
        "deconv1 256->128 7->14",
        &randn(&[b, 256, 7, 7]),
        &randn(&[256, 128, 4, 4]),
        |x, w| kernels::conv_transpose2d(x, w, 2, 1, 0),
    );
    pair(
        c,
        "conv2 64->128 14->7",
        &randn(&[b, 64, 14, 14]),
        &randn(&[128, 64, 4, 4]),
        |x, w| kernels::conv2d(x, w, 2, 1),
    );
    let gamma = randn(&[128]);
    pair(
        c,
        "batchnorm+relu 128ch 14x14",
        &randn(&[b, 128, 14, 14]),
        &randn(&[128]),
        move |x, beta| {
            let stats = kernels::channel_stats(x)?;
            kernels::batch_norm(x, &stats, &gamma, beta, 1e-5, Activation::Relu, true)
        },
    );
}

criterion_group!(benches, bench);

/// `criterion_main!` with candle's element-wise pool sized first, as the `cdcgan` binary and
/// `cargo xtask bench` run it.
fn main() {
    let threads = candle_core::utils::get_num_threads();
    // SAFETY: first thing in `main`: no other thread exists yet.
    unsafe { cdcgan_nn::runtime::size_candle_pool(threads) };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
