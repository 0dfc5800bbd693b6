//! The error type of `cdcgan-nn`.

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shapes, dtypes, devices).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Optimizer state given to [`crate::Adam::load_state`] does not fit the variables.
    #[error("optimizer state: {0}")]
    State(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
