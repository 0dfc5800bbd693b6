//! Anyone's digits for `cdcgan eval --images`: an IDX pair, or a folder of 28x28 PNGs whose
//! class is in a sub-folder's name (`7/any.png`) or leads the file name (`7_0012.png`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES, Split};

/// The most digits `--images` reads (123 MB of pixels).
pub const MAX_DIGITS: usize = 150_000;

/// The digits at `images`: with `labels`, an IDX image file and its label file (raw or
/// gzipped); without, a folder of PNGs.
pub fn load_digits(images: &Path, labels: Option<&Path>) -> Result<Split> {
    let split = match labels {
        Some(labels) => {
            // The count from the header, before the file is read.
            let count = idx_count(images)?;
            if count > MAX_DIGITS as u64 {
                bail!(
                    "{} holds {count} digits, at most {MAX_DIGITS} are read",
                    images.display()
                );
            }
            Split::read(images, labels)?
        }
        None if images.is_dir() => png_folder(images)?,
        None => bail!(
            "{} is a file: give its labels with --labels (IDX), or give a folder of PNGs",
            images.display()
        ),
    };
    if let Some(bad) = split
        .labels()
        .iter()
        .find(|&&l| usize::from(l) >= NUM_CLASSES)
    {
        bail!("{}: label {bad} is not a digit 0-9", images.display());
    }
    if let Some(c) =
        (0..NUM_CLASSES as u8).find(|c| split.labels().iter().filter(|l| *l == c).count() < 2)
    {
        bail!(
            "{}: class {c} has fewer than 2 digits; every class needs at least 2",
            images.display()
        );
    }
    Ok(split)
}

/// The item count in an IDX file's header (its first dimension), gzipped or not.
fn idx_count(path: &Path) -> Result<u64> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut reader: Box<dyn std::io::Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut header = [0u8; 8];
    reader
        .read_exact(&mut header)
        .with_context(|| format!("{}: too short for an IDX header", path.display()))?;
    Ok(u64::from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ])))
}

/// The class a PNG's path names: its folder's name if that is one digit, else the file
/// name's first character when a digit followed by `_`, `-` or `.`.
fn class_of(path: &Path, in_class_dir: Option<u8>) -> Option<u8> {
    if in_class_dir.is_some() {
        return in_class_dir;
    }
    let name = path.file_name()?.to_str()?.as_bytes();
    match name {
        [d @ b'0'..=b'9', b'_' | b'-' | b'.', ..] => Some(d - b'0'),
        _ => None,
    }
}

/// A single-digit folder name as its class.
fn class_dir(path: &Path) -> Option<u8> {
    match path.file_name()?.to_str()?.as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
    }
}

fn is_png(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

fn listing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

/// Every PNG of `dir` and of its one-digit sub-folders, with its class, in path order.
fn png_files(dir: &Path) -> Result<Vec<(PathBuf, u8)>> {
    let mut files = Vec::new();
    let mut add = |path: PathBuf, in_dir: Option<u8>| -> Result<()> {
        let Some(class) = class_of(&path, in_dir) else {
            bail!(
                "{}: no class in its name (use a folder 0-9, or a name like 7_0012.png)",
                path.display()
            );
        };
        if files.len() == MAX_DIGITS {
            bail!("{} holds more than {MAX_DIGITS} PNGs", dir.display());
        }
        files.push((path, class));
        Ok(())
    };
    for path in listing(dir)? {
        if path.is_dir() {
            if let Some(class) = class_dir(&path) {
                for inner in listing(&path)?.into_iter().filter(|p| is_png(p)) {
                    add(inner, Some(class))?;
                }
            }
        } else if is_png(&path) {
            add(path, None)?;
        }
    }
    if files.is_empty() {
        bail!(
            "{} holds no PNGs (nor folders 0-9 holding them)",
            dir.display()
        );
    }
    Ok(files)
}

/// The PNGs of `dir` as 8-bit grey digits (colour is converted, alpha ignored).
fn png_folder(dir: &Path) -> Result<Split> {
    let files = png_files(dir)?;
    let mut pixels = Vec::with_capacity(files.len() * IMAGE_PIXELS);
    let mut labels = Vec::with_capacity(files.len());
    for (path, class) in files {
        // The size from the header, before decoding anything.
        let (w, h) = image::image_dimensions(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if (w, h) != (IMAGE_SIDE as u32, IMAGE_SIDE as u32) {
            bail!("{}: {w}x{h} pixels, digits must be 28x28", path.display());
        }
        let img = image::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        pixels.extend_from_slice(img.to_luma8().as_raw());
        labels.push(class);
    }
    let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / pixels.len() as f64;
    if mean > 127.5 {
        eprintln!(
            "warning: the digits in {} are mostly light (mean pixel {mean:.0}); MNIST digits \
             are light strokes on black, so dark-on-light digits score as noise",
            dir.display()
        );
    }
    Ok(Split::new(pixels, labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_folder_or_the_name_start() {
        assert_eq!(class_of(Path::new("x/7_0012.png"), None), Some(7));
        assert_eq!(class_of(Path::new("x/3-a.png"), None), Some(3));
        assert_eq!(class_of(Path::new("x/0.png"), None), Some(0));
        assert_eq!(class_of(Path::new("x/12_a.png"), None), None);
        assert_eq!(class_of(Path::new("x/img7.png"), None), None);
        assert_eq!(class_of(Path::new("x/img.png"), Some(4)), Some(4));
        assert_eq!(class_dir(Path::new("a/9")), Some(9));
        assert_eq!(class_dir(Path::new("a/10")), None);
    }
}
