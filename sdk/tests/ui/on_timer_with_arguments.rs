use eddy_sdk::{Context, NoParams, Result, TimerRef};

#[eddy_sdk::on_timer(timers)]
fn wake(_timer: &TimerRef<'_>, _ctx: &mut Context<NoParams>) -> Result<()> {
    Ok(())
}

fn main() {}
