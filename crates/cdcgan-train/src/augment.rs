//! Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020):
//! random translation and cutout applied to real and generated digits alike, in the D step and
//! in the G step, so D cannot memorise the training digits and G still gets gradients through
//! the augmentation.
//!
//! Both are a per-example remapping of pixels onto the background, so they are done together
//! as one `gather` of the flattened image (its backward is a scatter-add): a pixel moved in from
//! outside the frame, or inside the cut-out square, reads a background pixel (-1, black).

use candle_core::{DType, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which DiffAugment transforms D's inputs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffAugment {
    /// D sees the digits as they are.
    #[default]
    Off,
    /// A random shift of up to an eighth of the side, rounded down (3 pixels at 28x28), in each
    /// direction.
    Translation,
    /// A black square of half the side at a random place.
    Cutout,
    /// Both: DiffAugment's `translation,cutout` policy.
    TranslationCutout,
}

impl DiffAugment {
    /// Every policy, off first.
    pub const ALL: [Self; 4] = [
        Self::Off,
        Self::Translation,
        Self::Cutout,
        Self::TranslationCutout,
    ];

    fn translates(self) -> bool {
        matches!(self, Self::Translation | Self::TranslationCutout)
    }

    fn cuts_out(self) -> bool {
        matches!(self, Self::Cutout | Self::TranslationCutout)
    }

    /// `x` `[b, 1, h, w]` in `[-1, 1]` with each example transformed at random by `rng`;
    /// `x` itself when off.
    pub fn apply(self, x: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
        if self == Self::Off {
            return Ok(x.clone());
        }
        let (b, c, h, w) = x.dims4()?;
        if c != 1 {
            return Err(Error::Config(format!(
                "diff_augment works on one-channel images, got {c} channels"
            )));
        }
        let pixels = h * w;
        let background = pixels as u32;
        // DiffAugment's ratios: shifts up to side/8, a square of side/2.
        let (shift_h, shift_w) = ((h / 8) as i64, (w / 8) as i64);
        let (cut_h, cut_w) = (h.div_ceil(2), w.div_ceil(2));
        let mut index = Vec::with_capacity(b * pixels);
        for _ in 0..b {
            let (dy, dx) = if self.translates() {
                (
                    rng.random_range(-shift_h..=shift_h),
                    rng.random_range(-shift_w..=shift_w),
                )
            } else {
                (0, 0)
            };
            // The square's top-left corner; it may hang over the edge, as in DiffAugment.
            let (cy, cx) = if self.cuts_out() {
                (
                    rng.random_range(0..=h) as i64 - (cut_h / 2) as i64,
                    rng.random_range(0..=w) as i64 - (cut_w / 2) as i64,
                )
            } else {
                (i64::MIN / 2, i64::MIN / 2)
            };
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let cut = (cy..cy + cut_h as i64).contains(&y)
                        && (cx..cx + cut_w as i64).contains(&x);
                    let (sy, sx) = (y - dy, x - dx);
                    let inside = (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx);
                    index.push(if cut || !inside {
                        background
                    } else {
                        (sy as usize * w + sx as usize) as u32
                    });
                }
            }
        }
        let index = Tensor::from_vec(index, (b, pixels), x.device())?;
        let flat = x.reshape((b, pixels))?;
        let black = Tensor::full(-1f32, (b, 1), x.device())?.to_dtype(x.dtype())?;
        let padded = Tensor::cat(&[&flat, &black], 1)?;
        Ok(padded
            .gather(&index.to_dtype(DType::U32)?, 1)?
            .reshape((b, c, h, w))?)
    }
}

impl std::fmt::Display for DiffAugment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Translation => "translation",
            Self::Cutout => "cutout",
            Self::TranslationCutout => "translation-cutout",
        })
    }
}

impl std::str::FromStr for DiffAugment {
    type Err = Error;

    /// `off`, `translation`, `cutout` or `translation-cutout`, as a config file spells them.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown diff_augment `{s}`; expected off, translation, cutout or \
                     translation-cutout"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn digits(b: usize) -> Tensor {
        let v: Vec<f32> = (0..b * 64).map(|i| (i % 97) as f32 / 97.0).collect();
        Tensor::from_vec(v, (b, 1, 8, 8), &Device::Cpu).unwrap()
    }

    #[test]
    fn off_is_the_identity_and_names_read_back() {
        let x = digits(2);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let y = DiffAugment::Off.apply(&x, &mut rng).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        for p in DiffAugment::ALL {
            assert_eq!(p.to_string().parse::<DiffAugment>().unwrap(), p);
        }
        assert!("colour".parse::<DiffAugment>().is_err());
    }

    #[test]
    fn translation_moves_every_example_as_a_whole_and_fills_with_black() {
        let x = digits(16);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y = DiffAugment::Translation.apply(&x, &mut rng).unwrap();
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ys = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut moved = 0;
        for e in 0..16 {
            let (src, dst) = (&xs[e * 64..][..64], &ys[e * 64..][..64]);
            // Some shift (dy, dx) with |d| <= 1 explains every output pixel.
            let explained = (-1i64..=1).any(|dy| {
                (-1i64..=1).any(|dx| {
                    (0..8i64).all(|yy| {
                        (0..8i64).all(|xx| {
                            let (sy, sx) = (yy - dy, xx - dx);
                            let want = if (0..8).contains(&sy) && (0..8).contains(&sx) {
                                src[(sy * 8 + sx) as usize]
                            } else {
                                -1.0
                            };
                            dst[(yy * 8 + xx) as usize] == want
                        })
                    })
                })
            });
            assert!(explained, "example {e}");
            moved += usize::from(src != dst);
        }
        assert!(moved > 8, "only {moved} of 16 moved");
    }

    #[test]
    fn cutout_blackens_one_square_and_gradients_reach_only_the_kept_pixels() {
        let x = Var::from_tensor(&digits(4)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let y = DiffAugment::Cutout.apply(x.as_tensor(), &mut rng).unwrap();
        let xs = x
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let ys = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap();
        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for e in 0..4 {
            let black = (0..64).filter(|&p| ys[e * 64 + p] == -1.0).count();
            // At most a 4x4 square, at least the part of it inside the frame (2x2).
            assert!((4..=16).contains(&black), "example {e}: {black} black");
            for p in 0..64 {
                let i = e * 64 + p;
                let kept = ys[i] == xs[i];
                assert_eq!(g[i], if kept { 1.0 } else { 0.0 }, "example {e} pixel {p}");
            }
        }
    }
}
