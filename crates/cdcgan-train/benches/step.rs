//! One `dcgan28` training step at batch 128, and generator inference at batch 1000 (CPU).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor};
use cdcgan_model::{Gan, ModelConfig, noise};
use cdcgan_train::{RunConfig, Trainer};
use criterion::{Criterion, Throughput, criterion_group};
use rand::SeedableRng;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);

    let b = 128;
    let mut trainer = Trainer::new(RunConfig::default(), &dev).expect("valid default config");
    let images = noise(&mut rng, b, 784, &dev)
        .and_then(|t| Ok(t.tanh()?.reshape((b, 1, 28, 28))?))
        .expect("images");
    let labels =
        Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &dev).expect("labels");
    let mut g = c.benchmark_group("dcgan28");
    g.sample_size(10);
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function("train-step-b128", |bench| {
        bench.iter(|| trainer.step(&images, &labels).expect("step"))
    });

    let n = 1000;
    let gan = Gan::new(ModelConfig::dcgan28(), 0, &dev).expect("model");
    let z = noise(&mut rng, n, 100, &dev).expect("noise");
    let y = Tensor::from_vec((0..n as u32).map(|i| i % 10).collect(), n, &dev).expect("labels");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("generate-b1000", |bench| {
        bench.iter(|| gan.generator.forward_t(&z, &y, false).expect("forward"))
    });
    g.finish();
}

criterion_group!(benches, bench);

/// `criterion_main!` with the spin of candle's element-wise pool shortened first, as the
/// `cdcgan` binary and `cargo xtask bench` run it.
fn main() {
    // SAFETY: first thing in `main`: no other thread exists yet.
    unsafe { cdcgan_model::kernels::shorten_candle_spin() };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
