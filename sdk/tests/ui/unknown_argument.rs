use eddy_sdk::{Context, NoParams, RecordRef, Result};

#[eddy_sdk::process(colour = "red")]
fn alerts(_record: &RecordRef<'_>, _ctx: &mut Context<NoParams>) -> Result<()> {
    Ok(())
}

fn main() {}
