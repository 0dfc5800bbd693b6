//! MNIST for Rust: read and write IDX files safely, load the dataset, batch it for candle.
//!
//! ```no_run
//! use candle_core::Device;
//! use mnist_data::{Batcher, Mnist};
//!
//! let mnist = Mnist::load("data/mnist")?; // the four files, raw or .gz
//! let batcher = Batcher::new(&mnist.train, 128)?.seed(42).drop_last(true);
//! for batch in batcher.epoch(0) {
//!     let (images, labels) = batch?; // f32 [128, 1, 28, 28] in [-1, 1], u32 [128]
//! #   let _ = (images, labels);
//! }
//! # Ok::<(), mnist_data::Error>(())
//! ```
//!
//! - [`IdxArray`]: the IDX format, parsed with every size checked against the bytes present
//!   before anything is allocated, and written atomically (raw or gzip).
//! - [`Mnist`] and [`Split`]: validated images (`[n, 28, 28]`) and labels (`0..=9`).
//! - [`Batcher`]: per-epoch shuffles reproducible from a seed.
//!
//! MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, and is available under
//! the terms of the Creative Commons Attribution-Share Alike 3.0 license.

mod batch;
mod dataset;
mod error;
mod idx;

pub use batch::{Batcher, Batches, pixel_to_signed, signed_to_pixel};
pub use dataset::{IMAGE_PIXELS, IMAGE_SIDE, MNIST_FILES, Mnist, MnistFile, NUM_CLASSES, Split};
pub use error::{DataError, Error, FormatError, Result};
pub use idx::{Compression, IdxArray, IdxDtype};
