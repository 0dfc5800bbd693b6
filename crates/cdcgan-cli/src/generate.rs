//! `sample`, `number`, `interpolate` and `export`: everything that runs a trained generator.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use cdcgan_model::{Checkpoint, Generator, generator_from_checkpoint, noise};
use cdcgan_train::{GridLayout, grid_image, image_size, save_png};
use clap::{Args, ValueEnum};
use image::{Delay, Frame, GrayImage, RgbaImage, imageops};
use mnist_data::{AtomicFile, IMAGE_SIDE, IdxArray, NUM_CLASSES, Split, signed_to_pixel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator shipped with the tool, stored as f16. Which run and epoch it is, and how to
/// train it again: `docs/results.md`, "The shipped generator".
const PRETRAINED: &[u8] = include_bytes!("../../../assets/generator.safetensors");

/// Images generated per forward pass. Every request is generated this many at a time and
/// written as it goes, so its peak memory does not grow with the digit count (a chunk of the
/// shipped generator's activations is about 200 MB).
const CHUNK: usize = 1000;

/// The most digits one `sample --format idx` writes: what an IDX header can count.
const MAX_IDX_DIGITS: usize = u32::MAX as usize;

/// A generator and where it came from.
pub struct Source {
    generator: Generator,
    z_dim: usize,
}

impl Source {
    /// `checkpoint` if given (EMA weights preferred), else the shipped generator.
    pub fn load(checkpoint: Option<&Path>) -> Result<Self> {
        Self::load_with(checkpoint, true)
    }

    /// Like [`Source::load`]; `prefer_ema = false` takes a training state's raw generator.
    pub fn load_with(checkpoint: Option<&Path>, prefer_ema: bool) -> Result<Self> {
        let dev = Device::Cpu;
        let ckpt = match checkpoint {
            Some(path) => load_checkpoint(path)?,
            None => Checkpoint::from_bytes(PRETRAINED, "the built-in generator", &dev)?,
        };
        let generator = generator_from_checkpoint(&ckpt, prefer_ema, &dev)?;
        Ok(Self {
            z_dim: ckpt.config().z_dim,
            generator,
        })
    }

    /// Noise `[n, z_dim]` from `rng`.
    pub fn noise(&self, rng: &mut ChaCha8Rng, n: usize) -> Result<Tensor> {
        Ok(noise(rng, n, self.z_dim, &Device::Cpu)?)
    }

    /// Images `[n, 1, 28, 28]` in `[-1, 1]` for noise `[n, z_dim]` and class labels.
    pub fn generate(&self, z: &Tensor, labels: &[u8]) -> Result<Tensor> {
        let mut parts = Vec::new();
        for (i, chunk) in labels.chunks(CHUNK).enumerate() {
            let y = Tensor::from_vec(
                chunk.iter().map(|&l| u32::from(l)).collect::<Vec<_>>(),
                chunk.len(),
                &Device::Cpu,
            )?;
            let z = z.narrow(0, i * CHUNK, chunk.len())?;
            parts.push(self.generator.forward_t(&z, &y, false)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Generates `n` digits, digit `i` of class `label(i)`, [`CHUNK`] at a time, noise drawn
    /// in order from `rng` (the same noise as one draw of `n`); `each(first, images)` gets
    /// digits `first..` as `[k, 1, 28, 28]` in `[-1, 1]`.
    pub fn generate_each(
        &self,
        n: usize,
        label: impl Fn(usize) -> u8,
        rng: &mut ChaCha8Rng,
        mut each: impl FnMut(usize, Tensor) -> Result<()>,
    ) -> Result<()> {
        for first in (0..n).step_by(CHUNK) {
            let k = CHUNK.min(n - first);
            let z = self.noise(rng, k)?;
            let labels: Vec<u8> = (first..first + k).map(&label).collect();
            each(first, self.generate(&z, &labels)?)?;
        }
        Ok(())
    }

    /// One digit per label, as 8-bit images (what a PNG or IDX file holds), noise from `seed`.
    pub fn labelled_set(&self, labels: Vec<u8>, seed: u64) -> Result<Split> {
        let mut pixels = Vec::with_capacity(labels.len() * IMAGE_SIDE * IMAGE_SIDE);
        self.generate_each(
            labels.len(),
            |i| labels[i],
            &mut rng(seed),
            |_, images| {
                pixels.extend(to_pixels(&images)?);
                Ok(())
            },
        )?;
        Ok(Split::new(pixels, labels)?)
    }
}

/// Images `[k, 1, 28, 28]` in `[-1, 1]` as 8-bit pixels.
fn to_pixels(images: &Tensor) -> Result<Vec<u8>> {
    let values: Vec<f32> = images.flatten_all()?.to_vec1()?;
    Ok(values.into_iter().map(signed_to_pixel).collect())
}

/// Refuses to start when `path` could not be written: its directory is missing or is not a
/// directory. Checked before any digit is generated.
pub fn check_output(path: &Path, what: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{}: cannot write the {what} there: {} is not an existing directory",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!(
            "{}: cannot write the {what} there: it is a directory",
            path.display()
        );
    }
    Ok(())
}

/// Loads a checkpoint given as a file, a run directory (its newest state), or a run's
/// `checkpoints/latest` pointer.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let dev = Device::Cpu;
    let file = if path.is_dir() {
        // A run directory, or its checkpoints/ directory.
        let run = if path.join("checkpoints").is_dir() {
            path
        } else if path.file_name().is_some_and(|n| n == "checkpoints") {
            path.parent().unwrap_or(path)
        } else {
            bail!(
                "{}: a directory, but not a training run (no checkpoints/ in it); give a \
                 .safetensors file or a run directory",
                path.display()
            )
        };
        cdcgan_train::latest_state(run)?
            .with_context(|| format!("{}: no checkpoint in this run yet", path.display()))?
    } else if path.file_name().is_some_and(|n| n == "latest") {
        let run = path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        cdcgan_train::latest_state(run)?
            .with_context(|| format!("{}: names no checkpoint", path.display()))?
    } else {
        path.to_owned()
    };
    Ok(Checkpoint::load(&file, &dev)?)
}

/// `per_class` labels of each class, class by class: 0, 0, …, 1, 1, …, 9.
pub fn per_class_labels(per_class: usize) -> Vec<u8> {
    (0..NUM_CLASSES as u8)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

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
pub fn sample(src: &Source, o: &SampleOpts) -> Result<()> {
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
        Ok(layout.paste(&mut img, first, &images)?)
    })?;
    save_png(&img, &out)?;
    println!("wrote {} ({n} digits)", out.display());
    Ok(())
}

/// Writes `n` digits (class `class(i)` for digit `i`, noise from `seed`) as an IDX pair,
/// streaming: memory stays at one chunk whatever `n` is. Neither file is put in place
/// before every digit is written.
fn export_idx(src: &Source, o: &SampleOpts) -> Result<()> {
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
    let mut images = AtomicFile::create(&images_path)?;
    let mut labels = AtomicFile::create(&labels_path)?;
    let write =
        |file: &mut AtomicFile, bytes: &[u8]| file.write_all(bytes).map_err(|e| file.error(e));
    write(
        &mut images,
        &header(&[n, IMAGE_SIDE, IMAGE_SIDE], &images_path)?,
    )?;
    write(&mut labels, &header(&[n], &labels_path)?)?;
    src.generate_each(n, class, &mut rng(o.seed), |first, chunk| {
        write(&mut images, &to_pixels(&chunk)?)?;
        let k = chunk.dim(0)?;
        let classes: Vec<u8> = (first..first + k).map(class).collect();
        Ok(write(&mut labels, &classes)?)
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

/// Options of `cdcgan number`.
#[derive(Args, Debug)]
pub struct NumberOpts {
    /// The digits to draw, e.g. 2026.
    #[arg(allow_hyphen_values = true)]
    pub number: String,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One handwriting style for every digit (default: each digit its own).
    #[arg(long)]
    pub same_style: bool,
    /// Black digits on white.
    #[arg(long)]
    pub invert: bool,
    /// Enlarge every pixel K times.
    #[arg(long, value_name = "K", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,
    /// Output PNG (default NUMBER.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A generator or training checkpoint (or a run directory) instead of the built-in generator.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// `cdcgan number`: the digits of a number side by side, each generated for its class.
pub fn number(src: &Source, o: &NumberOpts) -> Result<()> {
    let labels = parse_number(&o.number)?;
    let side = IMAGE_SIDE as u64 * u64::from(o.scale);
    image_size(side * labels.len() as u64, side)?;
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| format!("{}.png", o.number).into());
    check_output(&out, "picture")?;
    let mut r = rng(o.seed);
    let z = if o.same_style {
        src.noise(&mut r, 1)?
            .broadcast_as((labels.len(), src.z_dim))?
            .contiguous()?
    } else {
        src.noise(&mut r, labels.len())?
    };
    let images = src.generate(&z, &labels)?;
    let values: Vec<f32> = images.flatten_all()?.to_vec1()?;
    let side = IMAGE_SIDE as u32;
    let mut img = GrayImage::new(side * labels.len() as u32, side);
    for (i, digit) in values.chunks_exact(IMAGE_SIDE * IMAGE_SIDE).enumerate() {
        for (j, &v) in digit.iter().enumerate() {
            let p = signed_to_pixel(v);
            let p = if o.invert { 255 - p } else { p };
            img.put_pixel(
                i as u32 * side + j as u32 % side,
                j as u32 / side,
                image::Luma([p]),
            );
        }
    }
    let img = imageops::resize(
        &img,
        img.width() * o.scale,
        img.height() * o.scale,
        imageops::FilterType::Nearest,
    );
    save_png(&img, &out)?;
    println!("wrote {} ({} digits)", out.display(), labels.len());
    Ok(())
}

/// The digits of `s` as class labels; anything but ASCII digits is an error.
pub fn parse_number(s: &str) -> Result<Vec<u8>> {
    if s.is_empty() {
        bail!("the number is empty: give digits such as 2026");
    }
    if s.len() > 256 {
        bail!("the number has {} digits; at most 256 are drawn", s.len());
    }
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) if c.is_ascii_digit() => Ok(d as u8),
            _ => bail!("{s:?} is not a number: {c:?} is not a digit 0-9"),
        })
        .collect()
}

/// Options of `cdcgan interpolate`.
#[derive(Args, Debug)]
pub struct InterpolateOpts {
    /// Columns from the first style to the second (2 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub steps: u16,
    /// Seed of the two styles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Enlarge every pixel K times.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,
    /// Output PNG (default interpolation.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the walk as an animated GIF here.
    #[arg(long, value_name = "FILE")]
    pub gif: Option<PathBuf>,
    /// A generator or training checkpoint (or a run directory) instead of the built-in generator.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// Spherical interpolation between two Gaussian noise vectors (keeps the norm typical).
fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.abs() < 1e-4 {
        return a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    }
    let (sa, sb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    a.iter().zip(b).map(|(x, y)| sa * x + sb * y).collect()
}

/// `cdcgan interpolate`: rows are classes, columns walk from one style to another.
pub fn interpolate(src: &Source, o: &InterpolateOpts) -> Result<()> {
    let steps = usize::from(o.steps);
    let layout = GridLayout::new(NUM_CLASSES * steps, steps, o.scale)?;
    let out = o.out.clone().unwrap_or_else(|| "interpolation.png".into());
    check_output(&out, "picture")?;
    if let Some(gif) = &o.gif {
        check_output(gif, "animation")?;
    }
    let ends: Vec<f32> = src.noise(&mut rng(o.seed), 2)?.flatten_all()?.to_vec1()?;
    let (a, b) = ends.split_at(src.z_dim);
    let path: Vec<Vec<f32>> = (0..steps)
        .map(|i| slerp(a, b, i as f32 / (steps - 1) as f32))
        .collect();
    // Row r = class r, column c = step c.
    let mut z = Vec::with_capacity(NUM_CLASSES * steps * src.z_dim);
    let mut labels = Vec::with_capacity(NUM_CLASSES * steps);
    for class in 0..NUM_CLASSES as u8 {
        for p in &path {
            z.extend_from_slice(p);
            labels.push(class);
        }
    }
    let z = Tensor::from_vec(z, (labels.len(), src.z_dim), &Device::Cpu)?;
    let images = src.generate(&z, &labels)?;
    let mut img = layout.canvas();
    layout.paste(&mut img, 0, &images)?;
    save_png(&img, &out)?;
    println!(
        "wrote {} ({NUM_CLASSES} classes x {steps} steps)",
        out.display()
    );
    if let Some(gif) = &o.gif {
        // Frame c: all ten classes at step c, there and back.
        let mut frames = Vec::new();
        let order: Vec<usize> = (0..steps).chain((1..steps - 1).rev()).collect();
        for &c in &order {
            let idx: Vec<u32> = (0..NUM_CLASSES).map(|r| (r * steps + c) as u32).collect();
            let idx = Tensor::from_vec(idx, NUM_CLASSES, &Device::Cpu)?;
            let row = images.index_select(&idx, 0)?;
            frames.push(grid_image(&row, NUM_CLASSES, o.scale.max(2))?);
        }
        write_gif(&frames, 120, gif)?;
        println!("wrote {} ({} frames)", gif.display(), frames.len());
    }
    Ok(())
}

/// Writes grayscale `frames` as a looping GIF (`delay_ms` per frame), atomically.
pub fn write_gif(frames: &[GrayImage], delay_ms: u32, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)?;
        for f in frames {
            let rgba: RgbaImage = image::DynamicImage::ImageLuma8(f.clone()).to_rgba8();
            enc.encode_frame(Frame::from_parts(
                rgba,
                0,
                0,
                Delay::from_numer_denom_ms(delay_ms, 1),
            ))?;
        }
    }
    mnist_data::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `cdcgan export`: the generator (EMA weights unless `raw`) of any checkpoint as a small standalone file.
pub fn export(checkpoint: &Path, out: &Path, f16: bool, raw: bool) -> Result<()> {
    let ckpt = load_checkpoint(checkpoint)?;
    let generator_ckpt = cdcgan_model::generator_checkpoint(&ckpt, !raw)?;
    let dtype = if f16 { DType::F16 } else { DType::F32 };
    generator_ckpt.save(out, dtype)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} tensors, {:?}, {size} bytes)",
        out.display(),
        generator_ckpt.tensors().len(),
        dtype
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_to_digits_and_reject_the_rest() {
        assert_eq!(parse_number("241256").unwrap(), vec![2, 4, 1, 2, 5, 6]);
        for bad in ["", "12a", "-3", "1.5", "٣", " 1"] {
            assert!(parse_number(bad).is_err(), "{bad:?}");
        }
        assert!(parse_number(&"1".repeat(257)).is_err());
    }

    #[test]
    fn slerp_hits_the_ends() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        assert_eq!(slerp(&a, &b, 0.0), vec![1.0, 0.0]);
        let end = slerp(&a, &b, 1.0);
        assert!((end[0]).abs() < 1e-6 && (end[1] - 1.0).abs() < 1e-6);
        let mid = slerp(&a, &b, 0.5);
        assert!((mid[0] - mid[1]).abs() < 1e-6 && (mid[0].hypot(mid[1]) - 1.0).abs() < 1e-5);
    }
}
