//! The local HTTP API of a running `eddy run`: health, status, plugin swap
//! and reset. Token-protected (bearer token), served by axum on the
//! runtime's async workers ([`crate::runtime`]), where plugin calls never
//! run. Requests reach the pipeline's thread through a channel, ring its
//! doorbell, and are served between two loop steps ([`crate::dataflow::control`]).
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /health` | `ok` (no token needed) |
//! | `GET /status` | the pipeline's [`PipelineStatus`](crate::dataflow::control::PipelineStatus) as JSON |
//! | `GET /metrics` | counters and histograms in Prometheus' text format |
//! | `PUT /pipelines/{p}/operators/{op}/plugin[?reset_state=true]` | swap in the plugin in the body (`.wasm` or bundle) |
//! | `POST /pipelines/{p}/operators/{op}/reset` | lift a quarantine |
//!
//! The address in use and the token are written to `api.json` and
//! `api.token` in the state directory, where the `eddy` commands on the same
//! host find them ([`client`]).

pub mod client;
mod routes;
mod token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

pub use token::Token;

use crate::dataflow::control::{PipelineStatus, Request};
use crate::plugin::Loader;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listen address is not an address.
    #[error("[api] listen `{0}` is not an address such as 127.0.0.1:7411")]
    Address(String),
    /// Binding failed (for example, the port is taken).
    #[error("cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// The token or address file could not be read or written.
    #[error("{}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Where a running API is, as written to `api.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Its base URL, e.g. `http://127.0.0.1:7411`.
    pub url: String,
    /// The serving process.
    pub pid: u32,
    /// The pipeline it serves.
    pub pipeline: String,
}

/// What the API serves: one running pipeline.
pub struct Served {
    /// The pipeline's name.
    pub pipeline: String,
    /// Where requests to its thread go.
    pub requests: Sender<Request>,
    /// Loads swapped-in plugins with the pipeline's engine and trust.
    pub loader: Loader,
    /// Renders the process's metrics, if a recorder is installed.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Wakes the pipeline's thread when a request is sent.
    pub doorbell: eddy_driver::Doorbell,
    /// How long a swap request waits for the verdict of the probation.
    pub swap_wait: Duration,
    /// The twin sync, when the pipeline has a `[twin]`.
    pub twins: Option<crate::twin::commands::TwinCommands>,
}

/// What the handlers share.
pub(crate) struct Shared {
    pipeline: String,
    token: Token,
    requests: Sender<Request>,
    loader: Loader,
    /// How long a swap request waits for the new version's probation.
    swap_wait: Duration,
    /// Renders what the `metrics` recorder has recorded.
    metrics: Option<crate::metrics::Metrics>,
    doorbell: eddy_driver::Doorbell,
    /// Requests that may be served at once.
    permits: Arc<tokio::sync::Semaphore>,
    /// Requests a second.
    rate: routes::Rate,
    /// The last status the pipeline gave, and when.
    last_status: tokio::sync::Mutex<Option<(std::time::Instant, PipelineStatus)>>,
    /// The twin sync, when the pipeline has a `[twin]`.
    twins: Option<crate::twin::commands::TwinCommands>,
}

/// The running API; it stops when it is dropped (or the runtime it runs on ends).
pub struct Api {
    /// The address it listens on.
    pub address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Api {
    /// Binds `listen` and serves `served` on `runtime`; writes `api.json`
    /// to `state_dir`.
    pub fn start(
        listen: &str,
        token: Token,
        state_dir: &Path,
        served: Served,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Api, ApiError> {
        let Served {
            pipeline,
            requests,
            loader,
            metrics,
            doorbell,
            swap_wait,
            twins,
        } = served;
        let address: SocketAddr = listen
            .parse()
            .map_err(|_| ApiError::Address(listen.to_owned()))?;
        let bind = |error| ApiError::Bind {
            address: listen.to_owned(),
            error,
        };
        let listener = std::net::TcpListener::bind(address).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let address = listener.local_addr().map_err(bind)?;
        let endpoint = Endpoint {
            url: format!("http://{address}"),
            pid: std::process::id(),
            pipeline: pipeline.clone(),
        };
        let path = state_dir.join("api.json");
        std::fs::create_dir_all(state_dir)
            .and_then(|()| {
                std::fs::write(
                    &path,
                    serde_json::to_vec(&endpoint).map_err(std::io::Error::other)?,
                )
            })
            .map_err(|error| ApiError::File { path, error })?;
        let shared = Arc::new(Shared {
            pipeline,
            token,
            requests,
            loader,
            swap_wait,
            metrics,
            doorbell,
            permits: Arc::new(tokio::sync::Semaphore::new(routes::MAX_REQUESTS)),
            rate: routes::Rate::new(),
            last_status: tokio::sync::Mutex::new(None),
            twins,
        });
        let app = routes::router(shared);
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind)?
        };
        let server = runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the API stopped: {e}");
            }
        });
        Ok(Api { address, server })
    }
}

/// The JSON answer to a swap.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SwapAnswer {
    /// `kept`, `rolled_back`, `refused` or `on_probation`.
    pub outcome: String,
    /// The version swapped out.
    pub from: Option<String>,
    /// The version swapped in.
    pub to: Option<String>,
    /// How long the operator paused for the swap, in ms.
    pub pause_ms: Option<f64>,
    /// Why it was refused or rolled back.
    pub error: Option<String>,
}
