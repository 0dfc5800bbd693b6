//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong training the classifier or measuring a set of digits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The optimizer failed.
    #[error(transparent)]
    Nn(#[from] cdcgan_nn::Error),
    /// Reading or writing data failed.
    #[error(transparent)]
    Data(#[from] mnist_data::Error),
    /// Reading a classifier file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file.
    #[error("{origin}: not a valid safetensors file: {source}")]
    Safetensors {
        /// Where the bytes came from.
        origin: String,
        /// The parser's complaint.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A classifier file that does not match the architecture.
    #[error("{origin}: {problem}")]
    BadFile {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// Inputs that cannot be measured (too few samples, mismatched sizes, ...).
    #[error("{0}")]
    Input(String),
    /// An invalid training configuration.
    #[error("invalid classifier training config: {0}")]
    Config(String),
    /// The training loss became NaN or infinite.
    #[error("classifier training diverged in epoch {epoch} (loss not finite)")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
