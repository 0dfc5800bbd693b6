//! Developer chores for the cdcgan workspace, run as `cargo xtask <task>`.

pub mod bench;
pub mod fetch;
pub mod web;
