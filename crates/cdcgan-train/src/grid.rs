//! Image grids of generated digits, written as PNG.

use std::path::Path;

use candle_core::{DType, Tensor};
use image::{GrayImage, ImageFormat, Luma};
use mnist_data::{IMAGE_SIDE, signed_to_pixel};

use crate::error::{Error, Result};

/// Black padding between cells, in (unscaled) pixels.
pub const GRID_PAD: u32 = 2;

/// Lays out images `[n, 1, 28, 28]` (values in `[-1, 1]`) in rows of `cols`, white digits on
/// black, with 2-pixel black padding; every pixel is enlarged `scale` times.
pub fn grid_image(images: &Tensor, cols: usize, scale: u32) -> Result<GrayImage> {
    let n = images.dim(0)?;
    let cols = cols.max(1);
    let rows = n.div_ceil(cols);
    let pixels: Vec<f32> = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let side = IMAGE_SIDE as u32;
    let scale = scale.max(1);
    let cell = side + GRID_PAD;
    let w = (GRID_PAD + cols as u32 * cell) * scale;
    let h = (GRID_PAD + rows as u32 * cell) * scale;
    let mut img = GrayImage::new(w, h);
    for (i, digit) in pixels.chunks_exact(IMAGE_SIDE * IMAGE_SIDE).enumerate() {
        let (r, c) = ((i / cols) as u32, (i % cols) as u32);
        let (x0, y0) = (GRID_PAD + c * cell, GRID_PAD + r * cell);
        for (j, &v) in digit.iter().enumerate() {
            let (x, y) = (j as u32 % side, j as u32 / side);
            let p = Luma([signed_to_pixel(v)]);
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel((x0 + x) * scale + dx, (y0 + y) * scale + dy, p);
                }
            }
        }
    }
    Ok(img)
}

/// Encodes `img` as PNG and writes it atomically.
pub fn save_png(img: &GrayImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .map_err(|e| Error::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
    Ok(mnist_data::write_atomic(path, bytes.get_ref())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layout_padding_and_scale() {
        // Two images: all white (1.0) and all black (-1.0), in one row.
        let white = Tensor::ones((1, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let imgs = Tensor::cat(&[&white, &white.neg().unwrap()], 0).unwrap();
        let g = grid_image(&imgs, 2, 2).unwrap();
        assert_eq!(g.dimensions(), ((2 + 2 * 30) * 2, (2 + 30) * 2));
        assert_eq!(g.get_pixel(0, 0).0[0], 0, "padding is black");
        assert_eq!(g.get_pixel(4, 4).0[0], 255, "first digit is white");
        assert_eq!(
            g.get_pixel((32 + 5) * 2, 10).0[0],
            0,
            "second digit is black"
        );
    }
}
