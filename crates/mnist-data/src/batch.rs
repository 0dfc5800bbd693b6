//! Shuffled mini-batches as candle tensors, reproducible from a seed and an epoch number.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{IMAGE_PIXELS, IMAGE_SIDE, Split};
use crate::error::{Error, Result};

/// Maps a pixel byte to `[-1, 1]` (0 -> -1, 255 -> 1), the range a tanh generator produces.
pub fn pixel_to_signed(p: u8) -> f32 {
    f32::from(p) / 127.5 - 1.0
}

/// Maps a value in `[-1, 1]` back to a pixel byte, clamping and rounding.
pub fn signed_to_pixel(x: f32) -> u8 {
    // NaN maps to 0 through the saturating cast.
    ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// Cuts a split into shuffled batches: images f32 `[b, 1, 28, 28]` in `[-1, 1]`, labels u32 `[b]`.
///
/// The order of an epoch depends only on the seed and the epoch number, so a run resumed at
/// epoch `e` sees exactly the batches an uninterrupted run would.
///
/// ```
/// use candle_core::Device;
/// use mnist_data::{Batcher, Split};
///
/// let split = Split::new(vec![0; 5 * 784], vec![0, 1, 2, 3, 4])?;
/// let batcher = Batcher::new(&split, 2)?.seed(7).drop_last(true).device(&Device::Cpu);
/// let mut n = 0;
/// for batch in batcher.epoch(0) {
///     let (images, labels) = batch?;
///     assert_eq!(images.dims(), &[2, 1, 28, 28]);
///     assert_eq!(labels.dims(), &[2]);
///     n += 1;
/// }
/// assert_eq!(n, batcher.batches_per_epoch());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batcher<'a> {
    split: &'a Split,
    batch_size: usize,
    seed: u64,
    drop_last: bool,
    device: Device,
}

impl<'a> Batcher<'a> {
    /// Batches of `batch_size` from `split`; seed 0, keep the last partial batch, on the CPU.
    pub fn new(split: &'a Split, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::ZeroBatchSize);
        }
        Ok(Self {
            split,
            batch_size,
            seed: 0,
            drop_last: false,
            device: Device::Cpu,
        })
    }

    /// Sets the shuffling seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether to drop a final batch smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Sets the device the tensors are made on.
    pub fn device(mut self, device: &Device) -> Self {
        self.device = device.clone();
        self
    }

    /// Number of batches an epoch yields.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.split.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order of the examples in `epoch`: a permutation fixed by the seed and the epoch.
    pub fn order(&self, epoch: u64) -> Vec<u32> {
        // n <= u32::MAX is guaranteed for any split read from IDX; larger in-memory splits
        // would be unusually large for this crate's purpose.
        let mut order: Vec<u32> = (0..self.split.len() as u32).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch);
        order.shuffle(&mut rng);
        order
    }

    /// The batches of `epoch`.
    pub fn epoch(&self, epoch: u64) -> Batches<'a> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch`, starting at batch `start` (to resume inside an epoch).
    pub fn epoch_from(&self, epoch: u64, start: usize) -> Batches<'a> {
        let mut order = self.order(epoch);
        if self.drop_last {
            order.truncate(self.batches_per_epoch() * self.batch_size);
        }
        Batches {
            split: self.split,
            order,
            pos: start.saturating_mul(self.batch_size),
            batch_size: self.batch_size,
            device: self.device.clone(),
        }
    }
}

/// The batches of one epoch; see [`Batcher::epoch`].
#[derive(Debug)]
pub struct Batches<'a> {
    split: &'a Split,
    order: Vec<u32>,
    pos: usize,
    batch_size: usize,
    device: Device,
}

impl Batches<'_> {
    fn make(&self, idx: &[u32]) -> Result<(Tensor, Tensor)> {
        let mut pixels = Vec::with_capacity(idx.len() * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            let i = i as usize;
            pixels.extend(self.split.image(i).iter().map(|&p| pixel_to_signed(p)));
            labels.push(u32::from(self.split.labels()[i]));
        }
        let b = idx.len();
        let images = Tensor::from_vec(pixels, (b, 1, IMAGE_SIDE, IMAGE_SIDE), &self.device)?;
        let labels = Tensor::from_vec(labels, b, &self.device)?;
        Ok((images, labels))
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let batch = self.make(&self.order[self.pos..end]);
        self.pos = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self
            .order
            .len()
            .saturating_sub(self.pos)
            .div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NUM_CLASSES;

    fn split(n: usize) -> Split {
        // Image i is filled with the value i so batches can be traced back to examples.
        let images = (0..n).flat_map(|i| [i as u8; IMAGE_PIXELS]).collect();
        let labels = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
        Split::new(images, labels).unwrap()
    }

    fn ids(b: &Batcher, epoch: u64) -> Vec<u32> {
        b.epoch(epoch)
            .flat_map(|r| {
                let (_, labels) = r.unwrap();
                labels.to_vec1::<u32>().unwrap()
            })
            .collect()
    }

    #[test]
    fn pixel_mapping_round_trips() {
        assert_eq!(pixel_to_signed(0), -1.0);
        assert_eq!(pixel_to_signed(255), 1.0);
        for p in 0..=255u8 {
            assert_eq!(signed_to_pixel(pixel_to_signed(p)), p);
        }
        assert_eq!(signed_to_pixel(f32::NAN), 0);
        assert_eq!(signed_to_pixel(7.0), 255);
    }

    #[test]
    fn epochs_are_permutations_reproducible_from_the_seed() {
        let s = split(25);
        let b = Batcher::new(&s, 4).unwrap().seed(3);
        let mut o0 = b.order(0);
        assert_eq!(o0, b.order(0));
        assert_ne!(o0, b.order(1));
        assert_ne!(o0, Batcher::new(&s, 4).unwrap().seed(4).order(0));
        o0.sort();
        assert_eq!(o0, (0..25).collect::<Vec<_>>());
        assert_eq!(ids(&b, 2), ids(&b, 2));
    }

    #[test]
    fn batches_hold_the_shuffled_examples_scaled() {
        let s = split(10);
        let b = Batcher::new(&s, 3).unwrap().seed(1);
        assert_eq!(b.batches_per_epoch(), 4);
        let order = b.order(0);
        let batches: Vec<_> = b.epoch(0).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 4);
        assert_eq!(batches[3].0.dims(), &[1, 1, 28, 28]);
        let first = batches[0]
            .0
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(first[0], pixel_to_signed(order[0] as u8));
        assert_eq!(first[IMAGE_PIXELS], pixel_to_signed(order[1] as u8));
        let labels = batches[0].1.to_vec1::<u32>().unwrap();
        assert_eq!(labels[0], order[0] % 10);
    }

    #[test]
    fn drop_last_and_resume_inside_an_epoch() {
        let s = split(10);
        let b = Batcher::new(&s, 3).unwrap().drop_last(true);
        assert_eq!(b.batches_per_epoch(), 3);
        assert_eq!(b.epoch(0).len(), 3);
        let all: Vec<_> = b
            .epoch(5)
            .map(|r| r.unwrap().1.to_vec1::<u32>().unwrap())
            .collect();
        let tail: Vec<_> = b
            .epoch_from(5, 1)
            .map(|r| r.unwrap().1.to_vec1::<u32>().unwrap())
            .collect();
        assert_eq!(tail, all[1..]);
        assert_eq!(b.epoch_from(5, 99).count(), 0);
    }

    #[test]
    fn zero_batch_size_is_an_error() {
        assert!(matches!(
            Batcher::new(&split(1), 0),
            Err(Error::ZeroBatchSize)
        ));
    }
}
