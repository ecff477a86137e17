use eddy_sdk::{Context, RecordRef, Result};

#[eddy_sdk::process]
fn alerts<P>(_record: &RecordRef<'_>, _ctx: &mut Context<P>) -> Result<()> {
    Ok(())
}

fn main() {}
