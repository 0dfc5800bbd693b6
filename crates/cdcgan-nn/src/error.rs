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
    /// Optimizer state given to [`crate::Adam::load_state`] does not fit the variables.
    #[error("optimizer state: {0}")]
    State(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
