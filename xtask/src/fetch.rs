//! `cargo xtask fetch-mnist`: get the four MNIST files, verified by SHA-256, atomically.
//!
//! Sources are tried in order: public HTTP mirrors (those torchvision and TensorFlow Datasets
//! use), or a local folder given with `--from`. Each file's decompressed SHA-256 must match the
//! published hash before it is written; writes go through a temporary file and a rename, so an
//! interrupted run never leaves a file that later passes as valid.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use mnist_data::MnistFile;
use sha2::{Digest, Sha256};

/// The mirrors torchvision and TensorFlow Datasets download MNIST from, in the order tried.
pub const MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// No MNIST file is near this size; anything larger is refused while downloading.
const MAX_DOWNLOAD: u64 = 64 << 20;

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// HTTP(S) base URLs, each followed by `<name>.gz`, tried in order.
    Mirrors(Vec<String>),
    /// A local folder holding the files (raw or `.gz`, either common spelling).
    Dir(PathBuf),
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already present and valid; left alone.
    Present,
    /// Written from the named source.
    Fetched(String),
}

/// Fetches `files` into `dir` as `<name>.gz`, verifying each; returns what was done per file.
///
/// Messages go to `log` (one line per file).
pub fn fetch(
    files: &[MnistFile],
    dir: &Path,
    source: &Source,
    mut log: impl FnMut(&str),
) -> Result<Vec<Outcome>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut outcomes = Vec::with_capacity(files.len());
    for file in files {
        let dest = dir.join(format!("{}.gz", file.name));
        if dest.is_file() {
            match verify_file(&dest, file.sha256) {
                Ok(()) => {
                    log(&format!("{}: already present and valid", dest.display()));
                    outcomes.push(Outcome::Present);
                    continue;
                }
                Err(e) => log(&format!(
                    "{}: present but invalid ({e:#}); fetching again",
                    dest.display()
                )),
            }
        }
        let (gz, from) = match source {
            Source::Dir(from) => (read_local(file, from)?, from.display().to_string()),
            Source::Mirrors(urls) => download_any(file, urls)?,
        };
        // A temporary sibling, fsynced and renamed: `dest` is never half written.
        atomic_write_file::AtomicWriteFile::open(&dest)
            .and_then(|mut out| out.write_all(&gz).and_then(|()| out.commit()))
            .with_context(|| format!("cannot write {}", dest.display()))?;
        log(&format!(
            "{}: verified and written (from {from})",
            dest.display()
        ));
        outcomes.push(Outcome::Fetched(from));
    }
    Ok(outcomes)
}

/// Reads one file from a local folder, gzipping a raw copy, and verifies it.
fn read_local(file: &MnistFile, from: &Path) -> Result<Vec<u8>> {
    let path = file.find_in(from)?;
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let gz = if bytes.starts_with(&[0x1f, 0x8b]) {
        bytes
    } else {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes)?;
        enc.finish()?
    };
    verify_bytes(&gz, file.sha256)
        .with_context(|| format!("{} (source {})", file.name, path.display()))?;
    Ok(gz)
}

/// Tries each mirror in turn; the error lists every source tried and why it failed.
fn download_any(file: &MnistFile, mirrors: &[String]) -> Result<(Vec<u8>, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .timeout_connect(Some(Duration::from_secs(15)))
        .build()
        .into();
    let mut failures = String::new();
    let mut reached_any = false;
    for base in mirrors {
        let url = format!("{}/{}.gz", base.trim_end_matches('/'), file.name);
        let result = match agent.get(&url).call() {
            Err(ureq::Error::StatusCode(code)) => {
                reached_any = true;
                Err(anyhow::anyhow!("HTTP status {code}"))
            }
            Err(e) => Err(anyhow::Error::new(e)),
            Ok(response) => {
                reached_any = true;
                read_body(response, &url).and_then(|gz| verify_bytes(&gz, file.sha256).map(|()| gz))
            }
        };
        match result {
            Ok(gz) => return Ok((gz, url)),
            Err(e) => {
                let _ = writeln!(failures, "  {url}: {e:#}");
            }
        }
    }
    let hint = if reached_any {
        ""
    } else {
        "\nno mirror could be reached (offline?); if you have the files, use `cargo xtask fetch-mnist --from DIR`"
    };
    bail!("{}.gz: every source failed:\n{failures}{hint}", file.name)
}

/// Reads a response body with a progress bar, refusing anything larger than an MNIST file.
fn read_body(mut response: ureq::http::Response<ureq::Body>, url: &str) -> Result<Vec<u8>> {
    let len = response.body().content_length();
    if let Some(n) = len.filter(|&n| n > MAX_DOWNLOAD) {
        bail!("server announces {n} bytes, more than any MNIST file");
    }
    let bar = len.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_owned());
    let mut reader = bar.wrap_read(response.body_mut().as_reader().take(MAX_DOWNLOAD + 1));
    let mut body = Vec::new();
    reader
        .read_to_end(&mut body)
        .context("download interrupted")?;
    bar.finish_and_clear();
    if body.len() as u64 > MAX_DOWNLOAD {
        bail!("response larger than any MNIST file");
    }
    Ok(body)
}

/// Checks that `path` holds gzip data whose decompressed SHA-256 is `expected`.
pub fn verify_file(path: &Path, expected: &str) -> Result<()> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    check_hash(io::BufReader::new(file), expected)
}

fn verify_bytes(gz: &[u8], expected: &str) -> Result<()> {
    if !gz.starts_with(&[0x1f, 0x8b]) {
        bail!("not gzip data");
    }
    check_hash(gz, expected)
}

fn check_hash(gz: impl Read, expected: &str) -> Result<()> {
    let mut hasher = Sha256::new();
    io::copy(&mut MultiGzDecoder::new(gz), &mut hasher).context("corrupt gzip data")?;
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        bail!("SHA-256 mismatch: expected {expected}, got {actual}");
    }
    Ok(())
}
