//! cdcgan-model
