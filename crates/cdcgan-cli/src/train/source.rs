//! Where a run's data comes from: `--data`, `--limit`, or what the run recorded in
//! `RUN_DIR/data.toml`.

use std::path::PathBuf;

use anyhow::Result;
use cdcgan_train::{DataSource, Run};

/// The training split from `data` (else $MNIST_DIR, else data/mnist), cut to `limit`, the
/// test split (the live judge's reference), and where they came from.
pub fn load_split(
    data: Option<PathBuf>,
    limit: Option<usize>,
) -> Result<(mnist_data::Split, mnist_data::Split, DataSource)> {
    let mnist = crate::load_mnist(data.as_deref())?;
    let split = match limit {
        Some(n) => mnist.train.take(n),
        None => mnist.train,
    };
    let dir = crate::mnist_dir(data.as_deref());
    let source = DataSource {
        dir: Some(std::fs::canonicalize(&dir).unwrap_or(dir)),
        limit,
    };
    Ok((split, mnist.test, source))
}

/// Binds `run` to its data (refusing other data than it was trained on) and records where the
/// data came from.
pub fn start(
    run: Run,
    split: mnist_data::Split,
    source: DataSource,
) -> Result<(Run, mnist_data::Split)> {
    run.bind_data(&split)?;
    run.record_source(&source)?;
    Ok((run, split))
}
