//! The error type of `cdcgan-nn`.

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shapes, dtypes, devices).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file is larger than it may be, or its header is.
    #[error("{origin}: {problem}")]
    File {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// The bytes are not valid safetensors.
    #[error("{origin}: not a valid safetensors file: {source}")]
    Safetensors {
        /// Where the bytes came from.
        origin: String,
        /// The parser's complaint.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The tensors do not match the checksum stored with them (a corrupted file).
    #[error(
        "{origin}: checksum mismatch: the file is corrupted (stored {stored}, computed {computed})"
    )]
    Checksum {
        /// Where the bytes came from.
        origin: String,
        /// The SHA-256 in the metadata.
        stored: String,
        /// The SHA-256 of the tensors as read.
        computed: String,
    },
    /// Optimizer state given to [`crate::Adam::load_state`] does not fit the variables.
    #[error("optimizer state: {0}")]
    State(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
