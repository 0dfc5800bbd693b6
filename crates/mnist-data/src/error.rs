//! The crate's error type.

use std::path::PathBuf;

use crate::idx::IdxDtype;

/// A problem with the bytes of an IDX file, independent of where they came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the header needs.
    #[error("file too short for an IDX header: need {needed} bytes, found {found}")]
    TooShort {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The first two bytes are not `00 00`.
    #[error(
        "wrong magic number: expected 00 00 <dtype> <ndims>, found {0:02x} {1:02x} (not an IDX file?)"
    )]
    BadMagic(u8, u8),
    /// The type byte is not one the IDX format defines.
    #[error("unknown IDX data type 0x{0:02x}")]
    UnknownDtype(u8),
    /// The type is valid IDX but this crate reads only unsigned bytes.
    #[error("IDX data type {0:?} is not supported (only unsigned bytes, 0x08)")]
    UnsupportedDtype(IdxDtype),
    /// The product of the dimensions does not fit in memory addresses.
    #[error("dimensions {0:?} overflow: their product is too large")]
    DimsOverflow(Vec<u64>),
    /// A dimension does not fit the format's `u32`, or there are more than 255 of them.
    #[error("dimensions {0:?} cannot be written as IDX (at most 255 dims, each below 2^32)")]
    DimsUnrepresentable(Vec<usize>),
    /// The data section is shorter than the header claims.
    #[error("truncated data: the header claims {expected} bytes of data, only {found} present")]
    Truncated {
        /// Bytes the dimensions call for.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Bytes remain after the data the header describes.
    #[error("dimension/size mismatch: the header claims {expected} bytes of data, but more follow")]
    TrailingBytes {
        /// Bytes the dimensions call for.
        expected: u64,
    },
    /// A gzip stream claims more data than its compressed size can hold.
    #[error(
        "the header claims {expected} bytes of data, more than a {compressed}-byte gzip stream can hold"
    )]
    ImplausibleSize {
        /// Bytes the dimensions call for.
        expected: u64,
        /// Size of the compressed input.
        compressed: usize,
    },
    /// The data length given to [`crate::IdxArray::new`] does not match its dimensions.
    #[error("{len} data bytes do not match dimensions {dims:?}")]
    LenMismatch {
        /// The dimensions.
        dims: Vec<usize>,
        /// The data length.
        len: usize,
    },
    /// The gzip stream is corrupt.
    #[error("corrupt gzip stream: {0}")]
    Gzip(#[source] std::io::Error),
}

/// A problem with decoded arrays as MNIST images or labels.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Images must be a 3-d array `[n, 28, 28]`.
    #[error("expected images of shape [n, 28, 28], found dimensions {0:?}")]
    ImageShape(Vec<usize>),
    /// Labels must be a 1-d array.
    #[error("expected a 1-d array of labels, found dimensions {0:?}")]
    LabelShape(Vec<usize>),
    /// A label outside `0..=9`.
    #[error("label {value} at index {index} is outside 0..=9")]
    LabelOutOfRange {
        /// Position of the label.
        index: usize,
        /// Its value.
        value: u8,
    },
    /// Different numbers of images and labels.
    #[error("{images} images but {labels} labels")]
    CountMismatch {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A pixel buffer whose length is not a multiple of 784.
    #[error("{0} pixel bytes are not a whole number of 28x28 images")]
    PixelLen(usize),
}

/// Everything that can go wrong in this crate; file errors name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid IDX.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The problem.
        #[source]
        source: FormatError,
    },
    /// A valid IDX file that is not valid MNIST (shape, label range).
    #[error("{}: {source}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// The problem.
        #[source]
        source: DataError,
    },
    /// The image and label files of a split disagree on the count.
    #[error("{} and {}: {source}", images.display(), labels.display())]
    Mismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// The problem.
        #[source]
        source: DataError,
    },
    /// One of the canonical MNIST files is missing from a directory.
    #[error(
        "MNIST file {name} (raw or .gz) not found in {}",
        dir.display()
    )]
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// The canonical file name.
        name: &'static str,
    },
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// Building a tensor failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
