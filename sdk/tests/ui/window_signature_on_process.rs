use eddy_sdk::{Context, NoParams, Result, WindowRef};

#[eddy_sdk::process]
fn stats(_window: &WindowRef<'_>, _ctx: &mut Context<NoParams>) -> Result<()> {
    Ok(())
}

fn main() {}
