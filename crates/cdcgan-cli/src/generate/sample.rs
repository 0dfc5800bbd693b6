//! `cdcgan sample`: a grid of digits as a PNG, or a labelled dataset as an IDX pair.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use atomic_write_file::AtomicWriteFile;
use cdcgan_model::{Sampler, to_pixels};
use cdcgan_train::{GridLayout, save_png};
use clap::{Args, ValueEnum};
use mnist_data::{IMAGE_SIDE, IdxArray, NUM_CLASSES};

use super::{check_output, rng};

/// The most digits one `sample --format idx` writes: what an IDX header can count.
const MAX_IDX_DIGITS: usize = u32::MAX as usize;

/// Options of `cdcgan sample`.
#[derive(Args, Debug)]
pub struct SampleOpts {
    /// Digits per class (columns of the grid).
    #[arg(long, default_value_t = 8)]
    pub per_class: usize,
    /// Draw only this digit (0-9).
    #[arg(long)]
    pub digit: Option<u8>,
    /// How many of --digit to draw.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Noise seed (same seed, same picture).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Enlarge every pixel K times.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,
    /// Output PNG (default samples.png), or the IDX file prefix.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// png: a picture; idx: PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte.
    #[arg(long, value_enum, default_value_t = Format::Png)]
    pub format: Format,
    /// Digits per class in the IDX dataset.
    #[arg(long, default_value_t = 1000)]
    pub count_per_class: usize,
    /// A generator or training checkpoint (or a run directory) instead of the built-in generator.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// What `cdcgan sample` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A PNG grid.
    Png,
    /// A labelled IDX dataset.
    Idx,
}

/// `cdcgan sample`: a grid PNG, or a labelled IDX dataset.
pub fn sample(src: &Sampler, o: &SampleOpts) -> Result<()> {
    if let Some(d) = o.digit
        && usize::from(d) >= NUM_CLASSES
    {
        bail!("--digit must be 0-9, got {d}");
    }
    if o.format == Format::Idx {
        return export_idx(src, o);
    }
    // Digit i's class: `d` throughout, or row by row with `per_class` columns.
    let (n, cols) = match o.digit {
        Some(_) => (o.count, o.count.clamp(1, 16)),
        None => (o.per_class.saturating_mul(NUM_CLASSES), o.per_class),
    };
    if n == 0 {
        bail!("nothing to draw: --per-class and --count must be at least 1");
    }
    let layout = GridLayout::new(n, cols, o.scale)?;
    let out = o.out.clone().unwrap_or_else(|| "samples.png".into());
    check_output(&out, "picture")?;
    let class = |i: usize| o.digit.unwrap_or((i / cols) as u8);
    let mut img = layout.canvas();
    src.generate_each(n, class, &mut rng(o.seed), |first, images| {
        Ok::<(), anyhow::Error>(layout.paste(&mut img, first, &images)?)
    })?;
    save_png(&img, &out)?;
    println!("wrote {} ({n} digits)", out.display());
    Ok(())
}

/// Writes `n` digits (class `class(i)` for digit `i`, noise from `seed`) as an IDX pair,
/// streaming: memory stays at one chunk whatever `n` is. Neither file is put in place
/// before every digit is written.
fn export_idx(src: &Sampler, o: &SampleOpts) -> Result<()> {
    let prefix = o.out.clone().unwrap_or_else(|| "synthetic".into());
    let per_class = o.count_per_class;
    let classes = if o.digit.is_some() { 1 } else { NUM_CLASSES };
    let n = per_class.saturating_mul(classes);
    if n == 0 {
        bail!("nothing to export: --count-per-class must be at least 1");
    }
    if n > MAX_IDX_DIGITS {
        bail!(
            "--count-per-class {per_class} asks for {n} digits; an IDX file holds at most \
             {MAX_IDX_DIGITS}"
        );
    }
    let name = |suffix: &str| {
        let mut s = prefix.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    let (images_path, labels_path) = (name("-images-idx3-ubyte"), name("-labels-idx1-ubyte"));
    check_output(&images_path, "dataset")?;
    let class = |i: usize| o.digit.unwrap_or((i / per_class) as u8);
    let header = |dims: &[usize], path: &Path| {
        IdxArray::header(dims).with_context(|| format!("{}", path.display()))
    };
    // Each file goes to a temporary sibling, renamed into place once complete.
    let (mut images, mut labels) = (Output::open(&images_path)?, Output::open(&labels_path)?);
    let write = |out: &mut Output, bytes: &[u8]| {
        out.file
            .write_all(bytes)
            .with_context(|| format!("cannot write {}", out.path.display()))
    };
    write(
        &mut images,
        &header(&[n, IMAGE_SIDE, IMAGE_SIDE], &images_path)?,
    )?;
    write(&mut labels, &header(&[n], &labels_path)?)?;
    src.generate_each(n, class, &mut rng(o.seed), |first, chunk| {
        write(&mut images, &to_pixels(&chunk)?)?;
        let k = chunk.dim(0)?;
        let classes: Vec<u8> = (first..first + k).map(class).collect();
        write(&mut labels, &classes)
    })?;
    images.commit()?;
    labels.commit()?;
    println!(
        "wrote {} and {} ({n} labelled digits)",
        images_path.display(),
        labels_path.display(),
    );
    Ok(())
}

/// A file written in pieces to a temporary sibling and renamed into place by `commit`; dropped
/// without it, the temporary file is removed.
struct Output<'a> {
    path: &'a Path,
    file: std::io::BufWriter<AtomicWriteFile>,
}

impl<'a> Output<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        let file = AtomicWriteFile::open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            path,
            file: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    fn commit(self) -> Result<()> {
        self.file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .and_then(AtomicWriteFile::commit)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}
