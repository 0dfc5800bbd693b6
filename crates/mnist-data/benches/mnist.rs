//! Parsing the 60k training images (gz and raw) and batching one epoch.
//!
//! Uses the real files from `MNIST_DIR` or `../shared/mnist` when present, else a synthetic
//! 60k-image set of the same size.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use mnist_data::{Batcher, Compression, IdxArray, MNIST_FILES, Split};

fn train_images_gz() -> Vec<u8> {
    let dirs = [
        std::env::var_os("MNIST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mnist")),
    ];
    if let Some(path) = dirs
        .into_iter()
        .flatten()
        .find_map(|d| MNIST_FILES[0].find_in(&d).ok())
    {
        let a = IdxArray::read(path).expect("readable MNIST");
        return a.to_bytes(Compression::Gzip).expect("encodable");
    }
    let data = (0..60_000 * 784).map(|i| ((i * 7) % 256) as u8).collect();
    let a = IdxArray::new(vec![60_000, 28, 28], data).expect("consistent");
    a.to_bytes(Compression::Gzip).expect("encodable")
}

fn bench(c: &mut Criterion) {
    let gz = train_images_gz();
    let array = IdxArray::from_bytes(&gz).expect("valid");
    let raw = array.to_bytes(Compression::None).expect("encodable");
    let mut g = c.benchmark_group("parse-60k");
    g.sample_size(10);
    g.bench_function("gzip", |b| {
        b.iter(|| IdxArray::from_bytes(&gz).expect("valid"))
    });
    g.bench_function("raw", |b| {
        b.iter(|| IdxArray::from_bytes(&raw).expect("valid"))
    });
    g.finish();

    let (_, pixels) = array.into_parts();
    let labels = (0..60_000).map(|i| (i % 10) as u8).collect();
    let split = Split::new(pixels, labels).expect("valid");
    let batcher = Batcher::new(&split, 128).expect("nonzero").drop_last(true);
    let mut g = c.benchmark_group("batch");
    g.sample_size(10);
    g.bench_function("epoch-60k-b128", |b| {
        b.iter(|| {
            for batch in batcher.epoch(0) {
                std::hint::black_box(batch.expect("tensor"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
