//! `eddy twin list|get|diff|set`: the twins a running eddy syncs.

use clap::Subcommand;
use serde_json::{Map, Value};

use super::Failure;
use crate::api::client::Client;
use crate::twin::commands::{TwinView, patch_of};

/// `eddy twin …`
#[derive(Debug, Subcommand)]
pub enum TwinCommand {
    /// The things whose twins this eddy syncs (the host's and its devices').
    List,
    /// A twin: desired, reported (with changes not yet sent), version.
    Get {
        /// The thing.
        thing: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// What differs: desired fields reported does not hold, and changes
    /// not yet accepted by the shadow service.
    Diff {
        /// The thing.
        thing: String,
    },
    /// Change desired state on the site (e.g. `params.alerts.threshold=45`,
    /// `points.setpoint=23.5`; `null` deletes a field). It acts at once and
    /// reaches the shadow service now, or when the link is back.
    Set {
        /// The thing.
        thing: String,
        /// PATH=VALUE, the value JSON or else a string.
        #[arg(required = true)]
        assignments: Vec<String>,
    },
}

/// Runs a `twin` command against the running eddy's API.
pub(crate) fn twin(client: &Client, command: TwinCommand) -> Result<(), Failure> {
    match command {
        TwinCommand::List => {
            for thing in client.twins().map_err(Failure::runtime)? {
                println!("{thing}");
            }
        }
        TwinCommand::Get { thing, json } => {
            let view = client.twin(&thing).map_err(Failure::runtime)?;
            if json {
                println!("{}", pretty(&view)?);
            } else {
                print_view(&view)?;
            }
        }
        TwinCommand::Diff { thing } => {
            let view = client.twin(&thing).map_err(Failure::runtime)?;
            print_diff(&view)?;
        }
        TwinCommand::Set { thing, assignments } => {
            let patch = patch_of(&assignments).map_err(Failure::usage)?;
            let view = client
                .set_desired(&thing, &patch)
                .map_err(Failure::runtime)?;
            print_diff(&view)?;
        }
    }
    Ok(())
}

fn pretty(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(Failure::runtime)
}

fn print_view(view: &TwinView) -> Result<(), Failure> {
    let name = match &view.shadow {
        Some(shadow) => format!("{} (shadow {shadow})", view.thing),
        None => view.thing.clone(),
    };
    let link = if view.synced {
        "synced"
    } else {
        "offline: local copy"
    };
    println!("twin {name}   version {}   {link}", view.version);
    if let Some(device) = &view.device {
        println!("device {device}");
    }
    println!("desired  {}", pretty(&view.desired)?);
    println!("reported {}", pretty(&view.reported)?);
    print_diff(view)
}

fn print_diff(view: &TwinView) -> Result<(), Failure> {
    let section = |name: &str, map: &Map<String, Value>| -> Result<(), Failure> {
        if !map.is_empty() {
            println!("{name} {}", pretty(map)?);
        }
        Ok(())
    };
    match &view.delta {
        Some(delta) => section("delta (desired, not reported)", delta)?,
        None => println!("in sync: reported holds every desired value"),
    }
    section("not yet sent (reported)", &view.pending_reported)?;
    section("not yet sent (desired)", &view.pending_desired)?;
    Ok(())
}
