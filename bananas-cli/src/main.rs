//! The `bananas` command.
fn main() {}
