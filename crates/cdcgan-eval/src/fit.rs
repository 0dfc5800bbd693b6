//! Training the classifier: Adam with a cosine learning-rate schedule, cross-entropy, random
//! affine augmentation (rotation, scale and shift, bilinear) and dropout before the feature
//! layer. Reproducible from the seed.
//!
//! The augmentation is what keeps the judge honest: a judge that has learned its training
//! digits by heart reads them as less varied than digits it never saw, and every diversity
//! ratio measured with it would be skewed (see docs/results.md, "The judge").

use candle_core::{Device, Tensor};
use cdcgan_nn::{Adam, AdamConfig};
use mnist_data::{Batcher, IMAGE_PIXELS, IMAGE_SIDE, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, DROPOUT_WIDTH};
use crate::error::{Error, Result};

/// How to train the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (cosine decay to 0 over the run).
    pub lr: f64,
    /// Largest random shift in pixels (each axis) applied to training images; 0 disables it.
    pub shift: f64,
    /// Largest random rotation in degrees (either way); 0 disables it.
    pub rotation: f64,
    /// Largest relative change of size: images are scaled by a factor drawn from
    /// `1 ± scale`; 0 disables it.
    pub scale: f64,
    /// Share of the last conv layer's outputs dropped (in training) before the feature layer.
    pub dropout: f64,
    /// Seed of the initialisation, shuffling and augmentation.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 12,
            batch_size: 128,
            lr: 2e-3,
            shift: 2.0,
            rotation: 12.0,
            scale: 0.1,
            dropout: 0.3,
            seed: 0,
        }
    }
}

/// What happened in one epoch of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitEpoch {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training cross-entropy.
    pub loss: f64,
    /// Training accuracy (on the augmented batches, in train mode).
    pub train_accuracy: f64,
}

/// Trains a fresh classifier on `train`, calling `on_epoch` after every epoch (return
/// `false` to stop early).
pub fn fit(
    train: &Split,
    config: &FitConfig,
    device: &Device,
    mut on_epoch: impl FnMut(&Classifier, FitEpoch) -> bool,
) -> Result<Classifier> {
    if train.is_empty() || config.batch_size == 0 || config.epochs == 0 {
        return Err(Error::Config(format!(
            "need images, a batch size and epochs (got {} images, batch {}, {} epochs)",
            train.len(),
            config.batch_size,
            config.epochs
        )));
    }
    config.validate()?;
    let net = Classifier::new(config.seed, device)?;
    let adam = AdamConfig {
        lr: config.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut opt = Adam::new(net.params(), adam)?;
    let batcher = Batcher::new(train, config.batch_size)?
        .seed(config.seed)
        .drop_last(true);
    let steps_per_epoch = batcher.batches_per_epoch().max(1);
    let total = (steps_per_epoch * config.epochs) as f64;
    let mut step = 0usize;
    for epoch in 0..config.epochs {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(1_000 + epoch as u64);
        let order = batcher.order(epoch as u64);
        let (mut loss_sum, mut hits, mut seen, mut steps) = (0.0, 0usize, 0usize, 0usize);
        for idx in order.chunks_exact(config.batch_size) {
            let (x, labels) = augmented_batch(train, idx, config, &mut rng, device)?;
            let keep = dropout_mask(idx.len(), config.dropout, &mut rng, device)?;
            let (logits, _) = net.forward_train(&x, keep.as_ref())?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            let progress = step as f64 / total;
            opt.set_lr(config.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            opt.step(&loss.backward()?)?;
            let l = f64::from(loss.to_scalar::<f32>()?);
            if !l.is_finite() {
                return Err(Error::Diverged { epoch: epoch + 1 });
            }
            loss_sum += l;
            let pred = logits.argmax(1)?.to_vec1::<u32>()?;
            let want = labels.to_vec1::<u32>()?;
            hits += pred.iter().zip(&want).filter(|(p, w)| p == w).count();
            seen += pred.len();
            steps += 1;
            step += 1;
        }
        let report = FitEpoch {
            epoch: epoch + 1,
            loss: loss_sum / steps.max(1) as f64,
            train_accuracy: hits as f64 / seen.max(1) as f64,
        };
        if !on_epoch(&net, report) {
            break;
        }
    }
    Ok(net)
}

impl FitConfig {
    /// Checks that every augmentation setting is in its range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f64, range: &str| {
            Err(Error::Config(format!("{what} is {v}, must be {range}")))
        };
        if !(0.0..=8.0).contains(&self.shift) {
            return bad("the shift", self.shift, "0 to 8 pixels");
        }
        if !(0.0..=45.0).contains(&self.rotation) {
            return bad("the rotation", self.rotation, "0 to 45 degrees");
        }
        if !(0.0..0.5).contains(&self.scale) {
            return bad("the scale", self.scale, "at least 0 and under 0.5");
        }
        if !(0.0..0.95).contains(&self.dropout) {
            return bad("the dropout", self.dropout, "at least 0 and under 0.95");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("the learning rate", self.lr, "positive");
        }
        Ok(())
    }
}

/// A random affine map of the 28x28 frame: rotation, uniform scale and shift about the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    /// Rotation in radians.
    pub angle: f64,
    /// Scale factor (> 0).
    pub scale: f64,
    /// Shift right and down, in pixels.
    pub dx: f64,
    /// See `dx`.
    pub dy: f64,
}

impl Affine {
    /// The identity map.
    #[cfg(test)]
    pub const IDENTITY: Self = Self {
        angle: 0.0,
        scale: 1.0,
        dx: 0.0,
        dy: 0.0,
    };

    /// Draws a map within `config`'s limits (each drawn uniformly).
    fn draw(config: &FitConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut sym = |limit: f64| {
            if limit > 0.0 {
                rng.random_range(-limit..=limit)
            } else {
                0.0
            }
        };
        Self {
            angle: sym(config.rotation).to_radians(),
            scale: 1.0 + sym(config.scale),
            dx: sym(config.shift),
            dy: sym(config.shift),
        }
    }

    /// `image` warped by the map, bilinearly sampled, background (0) where the source is outside
    /// the frame, as values in `[-1, 1]`.
    pub fn warp(&self, image: &[u8], out: &mut Vec<f32>) {
        let side = IMAGE_SIDE as isize;
        let centre = (IMAGE_SIDE as f64 - 1.0) / 2.0;
        // Inverse map: output pixel -> source position.
        let (sin, cos) = self.angle.sin_cos();
        let (a, b) = (cos / self.scale, sin / self.scale);
        let at = |r: isize, c: isize| -> f64 {
            if (0..side).contains(&r) && (0..side).contains(&c) {
                f64::from(image[(r * side + c) as usize])
            } else {
                0.0
            }
        };
        for y in 0..IMAGE_SIDE {
            let v = y as f64 - centre - self.dy;
            for x in 0..IMAGE_SIDE {
                let u = x as f64 - centre - self.dx;
                let sx = a * u + b * v + centre;
                let sy = -b * u + a * v + centre;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (c0, r0) = (x0 as isize, y0 as isize);
                let p = (1.0 - fy) * ((1.0 - fx) * at(r0, c0) + fx * at(r0, c0 + 1))
                    + fy * ((1.0 - fx) * at(r0 + 1, c0) + fx * at(r0 + 1, c0 + 1));
                out.push((p / 127.5 - 1.0) as f32);
            }
        }
    }
}

/// The images `idx` of `split`, each warped by a random [`Affine`] within `config`'s limits,
/// as `[b, 1, 28, 28]` in `[-1, 1]`, with labels `[b]`.
fn augmented_batch(
    split: &Split,
    idx: &[u32],
    config: &FitConfig,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let mut pixels = Vec::with_capacity(idx.len() * IMAGE_PIXELS);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let i = i as usize;
        Affine::draw(config, rng).warp(split.image(i), &mut pixels);
        labels.push(u32::from(split.labels()[i]));
    }
    let b = idx.len();
    Ok((
        Tensor::from_vec(pixels, (b, 1, IMAGE_SIDE, IMAGE_SIDE), device)?,
        Tensor::from_vec(labels, b, device)?,
    ))
}

/// Inverted dropout's mask for `b` rows of the layer before the features: each value 0 (with
/// probability `p`) or `1 / (1 - p)`; `None` when `p` is 0.
fn dropout_mask(b: usize, p: f64, rng: &mut ChaCha8Rng, device: &Device) -> Result<Option<Tensor>> {
    if p <= 0.0 {
        return Ok(None);
    }
    let n = b * DROPOUT_WIDTH;
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    Ok(Some(Tensor::from_vec(mask, (b, DROPOUT_WIDTH), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warp(image: &[u8], map: Affine) -> Vec<u8> {
        let mut out = Vec::new();
        map.warp(image, &mut out);
        out.iter()
            .map(|&x| mnist_data::signed_to_pixel(x))
            .collect()
    }

    #[test]
    fn identity_keeps_the_image() {
        let img: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(warp(&img, Affine::IDENTITY), img);
    }

    #[test]
    fn whole_pixel_shift_moves_pixels_and_fills_with_background() {
        let mut img = vec![0u8; IMAGE_PIXELS];
        img[5 * IMAGE_SIDE + 7] = 200;
        img[0] = 9;
        let map = Affine {
            dx: 2.0,
            dy: -1.0,
            ..Affine::IDENTITY
        };
        let out = warp(&img, map);
        assert_eq!(out[4 * IMAGE_SIDE + 9], 200);
        assert_eq!(
            out.iter().filter(|&&p| p != 0).count(),
            1,
            "pixel 0 left the frame"
        );
    }

    #[test]
    fn quarter_turn_rotates_about_the_centre() {
        // A pixel right of the centre ends up below it after +90 degrees (y grows downwards).
        let mut img = vec![0u8; IMAGE_PIXELS];
        img[13 * IMAGE_SIDE + 20] = 255;
        let map = Affine {
            angle: std::f64::consts::FRAC_PI_2,
            ..Affine::IDENTITY
        };
        let out = warp(&img, map);
        let lit: Vec<usize> = (0..IMAGE_PIXELS).filter(|&i| out[i] > 0).collect();
        assert_eq!(lit, vec![20 * IMAGE_SIDE + 14]);
    }

    #[test]
    fn scaling_up_spreads_ink_and_keeps_the_centre() {
        let mut img = vec![0u8; IMAGE_PIXELS];
        for r in 11..17 {
            for c in 11..17 {
                img[r * IMAGE_SIDE + c] = 255;
            }
        }
        let ink = |v: &[u8]| v.iter().map(|&p| f64::from(p)).sum::<f64>();
        let map = Affine {
            scale: 1.5,
            ..Affine::IDENTITY
        };
        let out = warp(&img, map);
        let ratio = ink(&out) / ink(&img);
        assert!((2.0..2.5).contains(&ratio), "area ratio {ratio}");
        assert_eq!(out[13 * IMAGE_SIDE + 13], 255);
    }

    #[test]
    fn draws_stay_within_the_limits_and_repeat_from_the_seed() {
        let config = FitConfig::default();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..500)
                .map(|_| Affine::draw(&config, &mut rng))
                .collect::<Vec<_>>()
        };
        let maps = draw(1);
        assert_eq!(maps, draw(1));
        assert_ne!(maps, draw(2));
        for m in &maps {
            assert!(m.angle.abs() <= config.rotation.to_radians() + 1e-12);
            assert!((m.scale - 1.0).abs() <= config.scale + 1e-12);
            assert!(m.dx.abs() <= config.shift && m.dy.abs() <= config.shift);
        }
        let widest = maps.iter().map(|m| m.angle.abs()).fold(0.0, f64::max);
        assert!(widest > 0.9 * config.rotation.to_radians(), "{widest}");
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        for bad in [
            FitConfig {
                rotation: 90.0,
                ..FitConfig::default()
            },
            FitConfig {
                scale: 0.5,
                ..FitConfig::default()
            },
            FitConfig {
                dropout: 1.0,
                ..FitConfig::default()
            },
            FitConfig {
                shift: f64::NAN,
                ..FitConfig::default()
            },
            FitConfig {
                lr: 0.0,
                ..FitConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(FitConfig::default().validate().is_ok());
    }
}
