//! `cdcgan number`: the digits of a number side by side.

use std::path::PathBuf;

use anyhow::{Result, bail};
use cdcgan_model::Sampler;
use cdcgan_train::{image_size, save_png};
use clap::Args;
use image::{GrayImage, imageops};
use mnist_data::{IMAGE_SIDE, signed_to_pixel};

use super::{check_output, rng};

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
pub fn number(src: &Sampler, o: &NumberOpts) -> Result<()> {
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
            .broadcast_as((labels.len(), src.z_dim()))?
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
}
