//! Shared helpers of the CLI tests: running the binary, and tiny MNIST-shaped data.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use mnist_data::{Compression, IMAGE_PIXELS, Split};

pub fn cdcgan(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cdcgan"))
        .current_dir(dir)
        .args(args)
        .env_remove("MNIST_DIR")
        .output()
        .expect("the binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Four IDX files of `n` simple class patterns (a bar whose position is the label).
pub fn tiny_mnist(dir: &Path, n: usize) {
    let make = |n: usize| {
        let mut pixels = vec![0u8; n * IMAGE_PIXELS];
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for (i, &l) in labels.iter().enumerate() {
            for row in 2..26 {
                for col in 0..2 {
                    pixels[i * IMAGE_PIXELS + row * 28 + 2 + usize::from(l) * 2 + col] = 255;
                }
            }
        }
        Split::new(pixels, labels).unwrap()
    };
    std::fs::create_dir_all(dir).unwrap();
    make(n)
        .write(
            dir.join("train-images-idx3-ubyte.gz"),
            dir.join("train-labels-idx1-ubyte.gz"),
            Compression::Gzip,
        )
        .unwrap();
    make(20)
        .write(
            dir.join("t10k-images-idx3-ubyte"),
            dir.join("t10k-labels-idx1-ubyte"),
            Compression::None,
        )
        .unwrap();
}

pub const TINY: &[&str] = &[
    "--z-dim",
    "8",
    "--gen-width",
    "4",
    "--disc-width",
    "4",
    "--batch-size",
    "16",
    "--grid-per-class",
    "2",
    "--log-every",
    "2",
    "--quiet",
];

/// A temporary directory holding `data/` with `n` tiny training images; returns it and the
/// data path as a string for `--data`.
pub fn workdir(n: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tiny_mnist(&data, n);
    let data = data.to_str().unwrap().to_owned();
    (dir, data)
}

/// `train --data DATA --out OUT EXTRA... TINY...`.
pub fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--data", data, "--out", out];
    args.extend_from_slice(extra);
    args.extend_from_slice(TINY);
    args
}
