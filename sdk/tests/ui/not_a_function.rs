#[eddy_sdk::process]
struct Alerts;

fn main() {}
