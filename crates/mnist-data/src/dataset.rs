//! MNIST splits: validated images and labels, and the loader for the canonical four files.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{DataError, Error, Result};
use crate::idx::{Compression, IdxArray};

/// Height and width of an MNIST image.
pub const IMAGE_SIDE: usize = 28;
/// Pixels in one MNIST image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes (the digits 0 to 9).
pub const NUM_CLASSES: usize = 10;

/// One of the four files of the MNIST distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MnistFile {
    /// The canonical name, without `.gz`.
    pub name: &'static str,
    /// The other common spelling (`train-images.idx3-ubyte`).
    pub alt_name: &'static str,
    /// SHA-256 of the decompressed file, lowercase hex.
    pub sha256: &'static str,
}

/// The four canonical MNIST files, with the SHA-256 of their decompressed contents.
pub const MNIST_FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        alt_name: "train-images.idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        alt_name: "train-labels.idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        alt_name: "t10k-images.idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        alt_name: "t10k-labels.idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

impl MnistFile {
    /// The first existing file for this entry in `dir`: the canonical or the alternative
    /// spelling, raw or with `.gz`.
    pub fn find_in(&self, dir: &Path) -> Result<PathBuf> {
        [self.name, self.alt_name]
            .iter()
            .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
            .find(|p| p.is_file())
            .ok_or_else(|| Error::Missing {
                dir: dir.to_owned(),
                name: self.name,
            })
    }
}

/// Digit images (28x28, one byte per pixel, 0 = background) with their labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Split {
    /// A split from row-major pixels (784 bytes an image) and labels in `0..=9`.
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Result<Self, DataError> {
        if !images.len().is_multiple_of(IMAGE_PIXELS) {
            return Err(DataError::PixelLen(images.len()));
        }
        check_labels(&labels)?;
        let n = images.len() / IMAGE_PIXELS;
        if n != labels.len() {
            return Err(DataError::CountMismatch {
                images: n,
                labels: labels.len(),
            });
        }
        Ok(Self { images, labels })
    }

    /// Reads a split from an image file and a label file (IDX, raw or gzip).
    pub fn read(images_path: impl AsRef<Path>, labels_path: impl AsRef<Path>) -> Result<Self> {
        let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
        let images = IdxArray::read(images_path)?;
        check_image_dims(images.dims()).map_err(|source| Error::Data {
            path: images_path.to_owned(),
            source,
        })?;
        let labels = IdxArray::read(labels_path)?;
        if labels.dims().len() != 1 {
            return Err(Error::Data {
                path: labels_path.to_owned(),
                source: DataError::LabelShape(labels.dims().to_vec()),
            });
        }
        check_labels(labels.data()).map_err(|source| Error::Data {
            path: labels_path.to_owned(),
            source,
        })?;
        let (_, images) = images.into_parts();
        let (_, labels) = labels.into_parts();
        Self::new(images, labels).map_err(|source| Error::Mismatch {
            images: images_path.to_owned(),
            labels: labels_path.to_owned(),
            source,
        })
    }

    /// Writes the split as an MNIST-style IDX pair (`[n, 28, 28]` images, `[n]` labels).
    pub fn write(
        &self,
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
        compression: Compression,
    ) -> Result<()> {
        let images = IdxArray::new(
            vec![self.len(), IMAGE_SIDE, IMAGE_SIDE],
            self.images.clone(),
        );
        let labels = IdxArray::new(vec![self.len()], self.labels.clone());
        // Both shapes hold by construction; the error path only guards an n beyond u32.
        let images = images.map_err(|source| Error::Format {
            path: images_path.as_ref().to_owned(),
            source,
        })?;
        let labels = labels.map_err(|source| Error::Format {
            path: labels_path.as_ref().to_owned(),
            source,
        })?;
        images.write(images_path, compression)?;
        labels.write(labels_path, compression)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `i`, row-major; panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The first `n` examples (all of them if `n >= len()`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            images: self.images[..n * IMAGE_PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// The images as a `u8` tensor `[n, 28, 28]`, with raw pixel values.
    pub fn images_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.images,
            (self.len(), IMAGE_SIDE, IMAGE_SIDE),
            device,
        )?)
    }

    /// The labels as a `u8` tensor `[n]`.
    pub fn labels_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.labels, self.len(), device)?)
    }
}

fn check_image_dims(dims: &[usize]) -> Result<(), DataError> {
    match dims {
        [_, IMAGE_SIDE, IMAGE_SIDE] => Ok(()),
        _ => Err(DataError::ImageShape(dims.to_vec())),
    }
}

fn check_labels(labels: &[u8]) -> Result<(), DataError> {
    match labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        Some(index) => Err(DataError::LabelOutOfRange {
            index,
            value: labels[index],
        }),
        None => Ok(()),
    }
}

/// The MNIST training (60,000) and test (10,000) splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
}

impl Mnist {
    /// Loads the four canonical files from `dir` (each raw or `.gz`, either common spelling).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let [train_images, train_labels, test_images, test_labels] =
            MNIST_FILES.map(|f| f.find_in(dir));
        Ok(Self {
            train: Split::read(train_images?, train_labels?)?,
            test: Split::read(test_images?, test_labels?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_split(n: usize) -> Split {
        let images = (0..n * IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Split::new(images, labels).unwrap()
    }

    #[test]
    fn split_new_validates() {
        assert!(matches!(
            Split::new(vec![0; IMAGE_PIXELS], vec![10]),
            Err(DataError::LabelOutOfRange {
                index: 0,
                value: 10
            })
        ));
        assert!(matches!(
            Split::new(vec![0; 2 * IMAGE_PIXELS], vec![1]),
            Err(DataError::CountMismatch {
                images: 2,
                labels: 1
            })
        ));
        assert!(matches!(
            Split::new(vec![0; 5], vec![]),
            Err(DataError::PixelLen(5))
        ));
    }

    #[test]
    fn write_then_load_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let train = tiny_split(12);
        let test = tiny_split(3);
        // One pair gzipped with canonical names, one raw with the dotted spelling.
        train
            .write(
                dir.path().join("train-images-idx3-ubyte.gz"),
                dir.path().join("train-labels-idx1-ubyte.gz"),
                Compression::Gzip,
            )
            .unwrap();
        test.write(
            dir.path().join("t10k-images.idx3-ubyte"),
            dir.path().join("t10k-labels.idx1-ubyte"),
            Compression::None,
        )
        .unwrap();
        let mnist = Mnist::load(dir.path()).unwrap();
        assert_eq!(mnist.train, train);
        assert_eq!(mnist.test, test);
        assert_eq!(mnist.train.image(1), train.image(1));
    }

    #[test]
    fn missing_files_are_named_with_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = Mnist::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }

    #[test]
    fn wrong_image_size_and_bad_labels_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("imgs");
        let labels = dir.path().join("lbls");
        IdxArray::new(vec![1, 27, 29], vec![0; 27 * 29])
            .unwrap()
            .write(&images, Compression::None)
            .unwrap();
        IdxArray::new(vec![1], vec![3])
            .unwrap()
            .write(&labels, Compression::None)
            .unwrap();
        let msg = Split::read(&images, &labels).unwrap_err().to_string();
        assert!(msg.contains("imgs") && msg.contains("[1, 27, 29]"), "{msg}");

        tiny_split(1)
            .write(&images, &labels, Compression::None)
            .unwrap();
        IdxArray::new(vec![1], vec![11])
            .unwrap()
            .write(&labels, Compression::None)
            .unwrap();
        let msg = Split::read(&images, &labels).unwrap_err().to_string();
        assert!(msg.contains("lbls") && msg.contains("label 11"), "{msg}");

        IdxArray::new(vec![2], vec![1, 2])
            .unwrap()
            .write(&labels, Compression::None)
            .unwrap();
        let msg = Split::read(&images, &labels).unwrap_err().to_string();
        assert!(msg.contains("1 images but 2 labels"), "{msg}");
    }
}
