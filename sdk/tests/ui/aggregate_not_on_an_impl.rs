#[eddy_sdk::aggregate]
fn stats() {}

fn main() {}
