//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The model crate failed (building, checkpoint I/O).
    #[error(transparent)]
    Model(#[from] cdcgan_model::Error),
    /// The layer crate failed (the optimizer).
    #[error(transparent)]
    Nn(#[from] cdcgan_nn::Error),
    /// The data crate failed (reading MNIST, batching).
    #[error(transparent)]
    Data(#[from] mnist_data::Error),
    /// A file in the run directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An invalid training configuration.
    #[error("invalid training config: {0}")]
    Config(String),
    /// A checkpoint lacks the training state this crate needs.
    #[error("{origin}: {problem}")]
    Checkpoint {
        /// The checkpoint.
        origin: String,
        /// What is missing or wrong.
        problem: String,
    },
    /// A loss or parameter became NaN or infinite.
    #[error("training diverged at step {step}: {what} is not finite")]
    NonFinite {
        /// The optimizer step.
        step: u64,
        /// Which quantity.
        what: String,
    },
    /// Another live process trains in this run directory.
    #[error("{}: in use by another training process (pid {pid}); lock file {}", dir.display(), dir.join("lock").display())]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// The owner's pid as written in the lock file.
        pid: String,
    },
    /// The run directory holds no checkpoint to resume from.
    #[error("{}: no checkpoint to resume from", .0.display())]
    NothingToResume(PathBuf),
    /// A new run was asked for in a directory that already holds one.
    #[error("{}: already holds a run; resume it or choose another directory", .0.display())]
    RunExists(PathBuf),
    /// The run was trained on other data than the split given to continue it.
    #[error(
        "{}: this run was trained on other data ({recorded}) than given now ({given}); \
         resume it with the data it was trained on",
        dir.display()
    )]
    DataChanged {
        /// The run directory.
        dir: PathBuf,
        /// The identity recorded in the run's `data.toml`.
        recorded: String,
        /// The identity of the split given.
        given: String,
    },
    /// The training split is smaller than one batch.
    #[error("the training set ({len} examples) is smaller than one batch ({batch_size})")]
    TooLittleData {
        /// Examples in the split.
        len: usize,
        /// The batch size.
        batch_size: usize,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
