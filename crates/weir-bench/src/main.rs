//! weir benchmarks (filled in below).
fn main() {}
