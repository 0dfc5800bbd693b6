//! Training the classifier: Adam with a cosine learning-rate schedule, cross-entropy, and
//! random shifts of up to `shift` pixels as augmentation. Reproducible from the seed.

use candle_core::{Device, Tensor};
use cdcgan_train::{Adam, AdamConfig};
use mnist_data::{Batcher, IMAGE_PIXELS, IMAGE_SIDE, Split, pixel_to_signed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
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
    pub shift: usize,
    /// Seed of the initialisation, shuffling and augmentation.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 6,
            batch_size: 128,
            lr: 2e-3,
            shift: 2,
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
            let (x, labels) = augmented_batch(train, idx, config.shift, &mut rng, device)?;
            let (logits, _) = net.forward_t(&x, true)?;
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

/// The images `idx` of `split`, each shifted by a random offset in `[-shift, shift]` per axis
/// (zeros fill the border), as `[b, 1, 28, 28]` in `[-1, 1]`, with labels `[b]`.
fn augmented_batch(
    split: &Split,
    idx: &[u32],
    shift: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let mut pixels = Vec::with_capacity(idx.len() * IMAGE_PIXELS);
    let mut labels = Vec::with_capacity(idx.len());
    let s = shift as i32;
    for &i in idx {
        let i = i as usize;
        let (dx, dy) = (rng.random_range(-s..=s), rng.random_range(-s..=s));
        let (dx, dy) = (dx as isize, dy as isize);
        pixels.extend(shifted(split.image(i), dx, dy).map(pixel_to_signed));
        labels.push(u32::from(split.labels()[i]));
    }
    let b = idx.len();
    Ok((
        Tensor::from_vec(pixels, (b, 1, IMAGE_SIDE, IMAGE_SIDE), device)?,
        Tensor::from_vec(labels, b, device)?,
    ))
}

/// `image` moved right by `dx` and down by `dy` pixels, background (0) coming in.
fn shifted(image: &[u8], dx: isize, dy: isize) -> impl Iterator<Item = u8> + '_ {
    let side = IMAGE_SIDE as isize;
    (0..side * side).map(move |p| {
        let (r, c) = (p / side - dy, p % side - dx);
        if (0..side).contains(&r) && (0..side).contains(&c) {
            image[(r * side + c) as usize]
        } else {
            0
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_pixels_and_fills_with_background() {
        let mut img = vec![0u8; IMAGE_PIXELS];
        img[5 * IMAGE_SIDE + 7] = 200;
        img[0] = 9;
        let out: Vec<u8> = shifted(&img, 2, -1).collect();
        assert_eq!(out[4 * IMAGE_SIDE + 9], 200);
        assert_eq!(
            out.iter().filter(|&&p| p != 0).count(),
            1,
            "pixel 0 left the frame"
        );
        let same: Vec<u8> = shifted(&img, 0, 0).collect();
        assert_eq!(same, img);
    }
}
