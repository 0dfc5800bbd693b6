//! Shared fixtures: synthetic digit-like data with one distinct pattern per class.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use cdcgan_model::ModelConfig;
use cdcgan_train::{RunConfig, TrainConfig};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES, Split};

/// The clean pattern of class `c`: a bright bar, vertical for 0..5 and horizontal for 5..10,
/// each at its own place.
pub fn pattern(c: usize) -> Vec<u8> {
    let mut img = vec![0u8; IMAGE_PIXELS];
    let band = 2 + 5 * (c % 5);
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let coord = if c < 5 { x } else { y };
            if (band..band + 4).contains(&coord) {
                img[y * IMAGE_SIDE + x] = 255;
            }
        }
    }
    img
}

/// `n` examples cycling through the classes, each pattern with a little deterministic noise.
pub fn patterns(n: usize) -> Split {
    let mut images = Vec::with_capacity(n * IMAGE_PIXELS);
    let mut state = 12345u32;
    for i in 0..n {
        for p in pattern(i % NUM_CLASSES) {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let jitter = (state >> 27) as u8; // 0..32
            images.push(if p > 0 { p - jitter } else { jitter });
        }
    }
    let labels = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
    Split::new(images, labels).expect("valid by construction")
}

/// A tiny, fast configuration.
pub fn tiny(epochs: u32, batch_size: usize) -> RunConfig {
    RunConfig {
        model: ModelConfig::tiny(),
        train: TrainConfig {
            epochs,
            batch_size,
            log_every: 2,
            grid_per_class: 2,
            seed: 11,
            ..TrainConfig::default()
        },
        phases: Vec::new(),
    }
}

/// Every tensor of a checkpoint as (name, values).
pub fn contents(ckpt: &cdcgan_model::Checkpoint) -> Vec<(String, Vec<f32>)> {
    ckpt.tensors()
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

pub fn labels_tensor(labels: &[u32]) -> Tensor {
    Tensor::new(labels, &Device::Cpu).unwrap()
}
