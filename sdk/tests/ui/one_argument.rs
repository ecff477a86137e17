use eddy_sdk::{RecordRef, Result};

#[eddy_sdk::process]
fn alerts(_record: &RecordRef<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
