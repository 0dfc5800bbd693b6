//! Where a run's data comes from: `--data`, `--limit`, and `RUN_DIR/data-source.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cdcgan_train::Run;

/// Where a run's training data came from, kept in `RUN_DIR/data-source.toml` so that
/// `--resume` finds it again from any working directory.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DataSource {
    /// The MNIST directory, absolute.
    pub dir: Option<PathBuf>,
    /// `--limit`, if one was given.
    pub limit: Option<usize>,
}

impl DataSource {
    const FILE: &str = "data-source.toml";

    /// The recorded source of the run in `run_dir`, if it has one.
    pub fn read(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(Self::FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let source = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        Ok(Some(source))
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let text = toml::to_string(self).context("cannot write the data source as TOML")?;
        cdcgan_nn::file::write_atomic(&run_dir.join(Self::FILE), text.as_bytes())?;
        Ok(())
    }
}

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
    source.write(run.dir())?;
    Ok((run, split))
}
