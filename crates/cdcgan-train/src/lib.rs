//! cdcgan-train
