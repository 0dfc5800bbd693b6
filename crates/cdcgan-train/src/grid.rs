//! Image grids of generated digits, written as PNG, and animations of them as GIF.

use std::path::Path;

use candle_core::{DType, Tensor};
use image::{GrayImage, ImageFormat, Luma};
use mnist_data::{IMAGE_SIDE, signed_to_pixel};

use crate::error::{Error, Result};

/// Black padding between cells, in (unscaled) pixels.
pub const GRID_PAD: u32 = 2;

/// The most pixels a grid image may hold: 256 Mi, 256 MiB of 8-bit gray (the PNG encoder
/// needs about as much again). Larger requests are refused before any digit is drawn.
pub const MAX_GRID_PIXELS: u64 = 1 << 28;

/// Where each digit of a grid goes: `n` digits in rows of `cols`, white on black, with
/// 2-pixel black padding, every pixel enlarged `scale` times.
///
/// [`GridLayout::new`] checks the size against [`MAX_GRID_PIXELS`], so a grid can be filled
/// chunk by chunk ([`GridLayout::paste`]) without ever holding every digit as floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    cols: usize,
    scale: u32,
    width: u32,
    height: u32,
}

impl GridLayout {
    /// The layout of `n` digits in rows of `cols` (at least 1), enlarged `scale` times; an
    /// error if `scale` is 0 or the image would exceed [`MAX_GRID_PIXELS`].
    pub fn new(n: usize, cols: usize, scale: u32) -> Result<Self> {
        if scale == 0 {
            return Err(Error::Config("the image scale must be at least 1".into()));
        }
        let cols = cols.max(1);
        let rows = n.div_ceil(cols) as u64;
        let cell = u64::from(IMAGE_SIDE as u32 + GRID_PAD);
        let side = |cells: u64| {
            cells
                .saturating_mul(cell)
                .saturating_add(u64::from(GRID_PAD))
                .saturating_mul(u64::from(scale))
        };
        let (width, height) = image_size(side(cols as u64), side(rows))?;
        Ok(Self {
            cols,
            scale,
            width,
            height,
        })
    }

    /// Width and height in pixels.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// A black image of the grid's size.
    pub fn canvas(&self) -> GrayImage {
        GrayImage::new(self.width, self.height)
    }

    /// Draws images `[k, 1, 28, 28]` (values in `[-1, 1]`) as digits `first..first + k` of
    /// the grid on `img` (a [`GridLayout::canvas`]).
    pub fn paste(&self, img: &mut GrayImage, first: usize, images: &Tensor) -> Result<()> {
        let pixels: Vec<f32> = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let (side, scale, cell) = (IMAGE_SIDE as u32, self.scale, IMAGE_SIDE as u32 + GRID_PAD);
        for (i, digit) in pixels.chunks_exact(IMAGE_SIDE * IMAGE_SIDE).enumerate() {
            let i = first + i;
            let (r, c) = ((i / self.cols) as u32, (i % self.cols) as u32);
            let (x0, y0) = (GRID_PAD + c * cell, GRID_PAD + r * cell);
            for (j, &v) in digit.iter().enumerate() {
                let (x, y) = (j as u32 % side, j as u32 / side);
                let p = Luma([signed_to_pixel(v)]);
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = ((x0 + x) * scale + dx, (y0 + y) * scale + dy);
                        if px < self.width && py < self.height {
                            img.put_pixel(px, py, p);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `(w, h)` as the sides of an image, if it fits [`MAX_GRID_PIXELS`]; else an error saying the
/// size asked for and the limit.
pub fn image_size(w: u64, h: u64) -> Result<(u32, u32)> {
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(width), Ok(height)) if w.saturating_mul(h) <= MAX_GRID_PIXELS => Ok((width, height)),
        _ => Err(Error::Config(format!(
            "an image of {w} x {h} pixels ({} Mi pixels) is larger than the limit of {} Mi \
             pixels (256 MiB); ask for fewer digits or a smaller scale",
            w.saturating_mul(h) >> 20,
            MAX_GRID_PIXELS >> 20
        ))),
    }
}

/// Lays out images `[n, 1, 28, 28]` (values in `[-1, 1]`) in rows of `cols`, white digits on
/// black, with 2-pixel black padding; every pixel is enlarged `scale` times (see
/// [`GridLayout`], which this checks the size with).
pub fn grid_image(images: &Tensor, cols: usize, scale: u32) -> Result<GrayImage> {
    let layout = GridLayout::new(images.dim(0)?, cols, scale)?;
    let mut img = layout.canvas();
    layout.paste(&mut img, 0, images)?;
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
    Ok(cdcgan_nn::file::write_atomic(path, bytes.get_ref())?)
}

/// Writes grayscale `frames` as a looping GIF (`delay_ms` per frame), atomically.
pub fn save_gif(frames: &[GrayImage], delay_ms: u32, path: &Path) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, DynamicImage, Frame};
    let mut bytes = Vec::new();
    let encoded = (|| {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)?;
        for f in frames {
            let rgba = DynamicImage::ImageLuma8(f.clone()).to_rgba8();
            let delay = Delay::from_numer_denom_ms(delay_ms, 1);
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, delay))?;
        }
        Ok::<(), image::ImageError>(())
    })();
    encoded.map_err(|e| Error::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    Ok(cdcgan_nn::file::write_atomic(path, &bytes)?)
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

    #[test]
    fn layouts_over_the_pixel_budget_or_of_scale_zero_are_refused() {
        assert!(GridLayout::new(4, 2, 0).is_err());
        assert!(GridLayout::new(usize::MAX, 16, 1).is_err());
        assert!(GridLayout::new(10, 10, 100_000).is_err());
        let err = GridLayout::new(1_000_000, 1000, 1).unwrap_err().to_string();
        assert!(
            err.contains("30002 x 30002") && err.contains("256 Mi"),
            "{err}"
        );
        // 8,000 x 8,000 pixels is within the budget.
        let ok = GridLayout::new(100, 10, 26).unwrap();
        assert_eq!(ok.dimensions(), (302 * 26, 302 * 26));
    }

    #[test]
    fn pasting_in_chunks_equals_one_grid() {
        let dev = Device::Cpu;
        let imgs = Tensor::randn(0f32, 1., (7, 1, 28, 28), &dev).unwrap();
        let whole = grid_image(&imgs, 3, 2).unwrap();
        let layout = GridLayout::new(7, 3, 2).unwrap();
        let mut img = layout.canvas();
        layout
            .paste(&mut img, 0, &imgs.narrow(0, 0, 4).unwrap())
            .unwrap();
        layout
            .paste(&mut img, 4, &imgs.narrow(0, 4, 3).unwrap())
            .unwrap();
        assert!(img == whole);
    }

    #[test]
    fn a_gif_holds_every_frame_in_order() {
        use image::AnimationDecoder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gif");
        let frames: Vec<GrayImage> = [0u8, 255]
            .into_iter()
            .map(|v| GrayImage::from_pixel(4, 3, Luma([v])))
            .collect();
        save_gif(&frames, 100, &path).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let decoded = image::codecs::gif::GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 2);
        for (frame, want) in decoded.iter().zip([0u8, 255]) {
            assert_eq!(frame.buffer().dimensions(), (4, 3));
            assert!(frame.buffer().pixels().all(|p| p.0[0] == want), "{want}");
        }
    }
}
