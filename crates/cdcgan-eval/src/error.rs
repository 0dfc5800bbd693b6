//! The crate's error type.

/// Everything that can go wrong training the classifier or measuring a set of digits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The optimizer failed, or reading, parsing or writing a classifier file did.
    #[error(transparent)]
    Nn(#[from] cdcgan_nn::Error),
    /// Reading or writing data failed.
    #[error(transparent)]
    Data(#[from] mnist_data::Error),
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
