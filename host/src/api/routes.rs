//! The API's routes and handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tokio::sync::oneshot;

use super::{Shared, SwapAnswer};
use crate::dataflow::control::{Request, SwapResult};
use crate::plugin::SwapOutcome;

/// The largest plugin upload.
const MAX_UPLOAD: usize = 64 << 20;

/// Serves until the process ends.
pub(super) fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("the API cannot start its runtime: {e}");
            return;
        }
    };
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/status", get(status))
        .route(
            "/pipelines/{pipeline}/operators/{operator}/plugin",
            put(swap),
        )
        .route("/pipelines/{pipeline}/operators/{operator}/reset", post(reset))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(shared);
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).await
    });
    if let Err(e) = result {
        tracing::error!("the API stopped: {e}");
    }
}

/// An error answer: status code and a JSON `{"error": …}`.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Refuses a request without the bearer token.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match offered {
        Some(token) if shared.token.matches(token) => Ok(()),
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see api.token in the state directory)",
        )),
    }
}

/// Sends a request to the pipeline's thread.
fn send(shared: &Shared, request: Request) -> Result<(), Response> {
    let requests = shared
        .requests
        .lock()
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is gone"))?;
    requests
        .send(request)
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline has stopped"))
}

/// A request about an operator of another pipeline.
fn check_pipeline(shared: &Shared, pipeline: &str) -> Result<(), Response> {
    if pipeline == shared.pipeline {
        return Ok(());
    }
    Err(error(
        StatusCode::NOT_FOUND,
        format!(
            "no pipeline `{pipeline}` here; this host runs `{}`",
            shared.pipeline
        ),
    ))
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let (reply, answer) = oneshot::channel();
    if let Err(r) = send(&shared, Request::Status(reply)) {
        return r;
    }
    match answer.await {
        Ok(status) => Json(status).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline has stopped"),
    }
}

/// `?reset_state=true`
#[derive(Debug, serde::Deserialize)]
struct SwapQuery {
    #[serde(default)]
    reset_state: bool,
}

async fn swap(
    State(shared): State<Arc<Shared>>,
    Path((pipeline, operator)): Path<(String, String)>,
    Query(query): Query<SwapQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers).and_then(|()| check_pipeline(&shared, &pipeline))
    {
        return r;
    }
    // Verifying and compiling take time: not on the pipeline's thread.
    let loader = shared.loader.clone();
    let loaded = tokio::task::spawn_blocking(move || loader.load_bytes(&body)).await;
    let module = match loaded {
        Ok(Ok(module)) => Arc::new(module),
        Ok(Err(e)) => return refused(StatusCode::BAD_REQUEST, format!("the plugin is refused: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (reply, answer) = oneshot::channel();
    let request = Request::Swap {
        operator,
        module,
        reset_state: query.reset_state,
        reply,
    };
    if let Err(r) = send(&shared, request) {
        return r;
    }
    let answer = match tokio::time::timeout(shared.swap_wait, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => return error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline has stopped"),
        Err(_) => {
            return (
                StatusCode::ACCEPTED,
                Json(SwapAnswer {
                    outcome: "on_probation".into(),
                    from: None,
                    to: None,
                    pause_ms: None,
                    error: None,
                }),
            )
                .into_response();
        }
    };
    match answer {
        SwapResult::Refused(reason) => refused(StatusCode::CONFLICT, reason),
        SwapResult::Done(SwapOutcome::Kept(report)) => Json(SwapAnswer {
            outcome: "kept".into(),
            from: Some(report.from),
            to: Some(report.to),
            pause_ms: Some(report.pause.as_secs_f64() * 1e3),
            error: None,
        })
        .into_response(),
        SwapResult::Done(SwapOutcome::RolledBack { report, fault }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(SwapAnswer {
                outcome: "rolled_back".into(),
                error: Some(format!(
                    "version {} {fault} on probation; rolled back to {}",
                    report.to, report.from
                )),
                from: Some(report.from),
                to: Some(report.to),
                pause_ms: Some(report.pause.as_secs_f64() * 1e3),
            }),
        )
            .into_response(),
    }
}

fn refused(code: StatusCode, reason: String) -> Response {
    (
        code,
        Json(SwapAnswer {
            outcome: "refused".into(),
            from: None,
            to: None,
            pause_ms: None,
            error: Some(reason),
        }),
    )
        .into_response()
}

async fn reset(
    State(shared): State<Arc<Shared>>,
    Path((pipeline, operator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers).and_then(|()| check_pipeline(&shared, &pipeline))
    {
        return r;
    }
    let (reply, answer) = oneshot::channel();
    if let Err(r) = send(&shared, Request::Reset { operator, reply }) {
        return r;
    }
    match answer.await {
        Ok(Ok(())) => Json(serde_json::json!({ "reset": true })).into_response(),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline has stopped"),
    }
}
