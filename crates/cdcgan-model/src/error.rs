//! The crate's error type.

/// Everything that can go wrong building, running, saving or loading the networks.
///
/// Checkpoint errors name their origin: a file path, or a label such as `<embedded generator>`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading, parsing or writing a safetensors file failed, or it is larger than a
    /// checkpoint of its architecture can be.
    #[error(transparent)]
    File(#[from] cdcgan_nn::Error),
    /// The checkpoint's metadata is missing or malformed.
    #[error("{origin}: bad checkpoint metadata: {problem}")]
    Metadata {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{origin}: missing tensor `{name}`")]
    MissingTensor {
        /// Where the bytes came from.
        origin: String,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another shape than the architecture needs.
    #[error("{origin}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Where the bytes came from.
        origin: String,
        /// The tensor's name.
        name: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor the architecture does not have (a checkpoint of another architecture).
    #[error("{origin}: unexpected tensor `{name}` (a checkpoint of another architecture?)")]
    UnexpectedTensor {
        /// Where the bytes came from.
        origin: String,
        /// The tensor's name.
        name: String,
    },
    /// A tensor stored in a type other than f32, f16 or bf16.
    #[error("{origin}: tensor `{name}` has unsupported dtype {dtype}")]
    Dtype {
        /// Where the bytes came from.
        origin: String,
        /// The tensor's name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// An invalid model configuration.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A request a [`crate::Sampler`] cannot draw: a label outside 0-9, or noise that does
    /// not fit the labels.
    #[error("{0}")]
    Request(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
