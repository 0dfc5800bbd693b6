//! cdcgan
fn main() {}
