//! The API's routes and handlers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tokio::sync::oneshot;

use super::{Shared, SwapAnswer};
use crate::dataflow::control::{Request, SwapResult};
use crate::plugin::SwapOutcome;

/// The largest plugin upload.
const MAX_UPLOAD: usize = 64 << 20;

/// Requests served at once; more are refused, not queued.
pub(super) const MAX_REQUESTS: usize = 4;

/// How old a status may be when another request asks for it: the pipeline's
/// thread builds one at most this often, however many clients ask.
const STATUS_REUSE: Duration = Duration::from_millis(100);

/// The API's routes. Every route but `/health` takes the bearer token,
/// checked before anything of the body is read, and counts against the
/// requests that may be served at once.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let guarded = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route(
            "/pipelines/{pipeline}/operators/{operator}/plugin",
            put(swap),
        )
        .route(
            "/pipelines/{pipeline}/operators/{operator}/reset",
            post(reset),
        )
        .route("/twins", get(twins))
        .route("/twins/{thing}", get(twin).patch(set_desired))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(guarded)
        .with_state(shared)
}

/// Refuses, before anything of its body is read: a request beyond the
/// rate the API serves (429), one without the token (401), one beyond the
/// requests served at once (503). A refusal is answered only after a short
/// pause, so a client that keeps asking cannot make the host spend its CPU
/// on refusals (nor try tokens quickly).
async fn guard(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Result<Response, Failure> {
    let refused = |failure: Failure| async {
        tokio::time::sleep(REFUSAL_PAUSE).await;
        Err(failure)
    };
    if !shared.rate.admit() {
        return refused(error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("over {REQUESTS_PER_SECOND} requests a second; try again later"),
        ))
        .await;
    }
    if let Err(failure) = authorize(&shared, request.headers()) {
        return refused(failure).await;
    }
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        return refused(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: {MAX_REQUESTS} requests are being served; try again"),
        ))
        .await;
    };
    let response = next.run(request).await;
    drop(permit);
    Ok(response)
}

/// Requests a second the API serves, on average, with bursts of as many.
pub(super) const REQUESTS_PER_SECOND: u32 = 200;

/// How long a refused request waits for its answer.
const REFUSAL_PAUSE: Duration = Duration::from_millis(100);

/// A token bucket: [`REQUESTS_PER_SECOND`] tokens a second, as many at most.
pub(super) struct Rate {
    state: std::sync::Mutex<(f64, Instant)>,
}

impl Rate {
    pub(super) fn new() -> Self {
        Rate {
            state: std::sync::Mutex::new((f64::from(REQUESTS_PER_SECOND), Instant::now())),
        }
    }

    /// Takes a token, if there is one.
    fn admit(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = &mut *state;
        let rate = f64::from(REQUESTS_PER_SECOND);
        *tokens = (*tokens + at.elapsed().as_secs_f64() * rate).min(rate);
        *at = Instant::now();
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An error answer: status code and a JSON `{"error": …}`.
struct Failure {
    code: StatusCode,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.code,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Refuses a request without the bearer token.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
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
fn send(shared: &Shared, request: Request) -> Result<(), Failure> {
    shared
        .requests
        .send(request)
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline has stopped"))?;
    shared.doorbell.ring();
    Ok(())
}

/// A request about an operator of another pipeline.
fn check_pipeline(shared: &Shared, pipeline: &str) -> Result<(), Failure> {
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

async fn status(State(shared): State<Arc<Shared>>) -> Result<Response, Failure> {
    if let Some((at, status)) = shared.last_status.lock().await.as_ref()
        && at.elapsed() < STATUS_REUSE
    {
        return Ok(Json(status.clone()).into_response());
    }
    let (reply, answer) = oneshot::channel();
    send(&shared, Request::Status(reply))?;
    match answer.await {
        Ok(status) => {
            *shared.last_status.lock().await = Some((Instant::now(), status.clone()));
            Ok(Json(status).into_response())
        }
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline has stopped",
        )),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, Failure> {
    let metrics = shared
        .metrics
        .as_ref()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no metrics recorder in this process"))?;
    let text = metrics.render().await.ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics recorder is still being built",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
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
    body: Bytes,
) -> Result<Response, Failure> {
    check_pipeline(&shared, &pipeline)?;
    // Verifying and compiling take time: not on the pipeline's thread.
    let loader = shared.loader.clone();
    let uploaded = body.clone();
    // Code that arrives over the network runs natively only when a trusted key signed it.
    let name = operator.clone();
    let loaded = tokio::task::spawn_blocking(move || loader.load_uploaded(&name, &uploaded)).await;
    let module = match loaded {
        Ok(Ok(module)) => Arc::new(module),
        Ok(Err(e)) => {
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                format!("the plugin is refused: {e}"),
            ));
        }
        Err(e) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let (reply, answer) = oneshot::channel();
    let request = Request::Swap {
        operator: operator.clone(),
        module,
        plugin: body.to_vec().into(),
        reset_state: query.reset_state,
        reply,
    };
    send(&shared, request)?;
    let answer = match tokio::time::timeout(shared.swap_wait, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the pipeline has stopped",
            ));
        }
        Err(_) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(SwapAnswer {
                    outcome: "on_probation".into(),
                    from: None,
                    to: None,
                    pause_ms: None,
                    error: None,
                }),
            )
                .into_response());
        }
    };
    Ok(match answer {
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
    })
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
) -> Result<Response, Failure> {
    check_pipeline(&shared, &pipeline)?;
    let (reply, answer) = oneshot::channel();
    send(&shared, Request::Reset { operator, reply })?;
    match answer.await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({ "reset": true })).into_response()),
        Ok(Err(e)) => Err(error(StatusCode::NOT_FOUND, e)),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline has stopped",
        )),
    }
}

/// Asks the twin sync; 404 when the pipeline has no `[twin]`.
async fn ask_twins<T>(
    shared: &Shared,
    make: impl FnOnce(oneshot::Sender<T>) -> crate::twin::commands::TwinCommand,
) -> Result<T, Failure> {
    let Some(twins) = &shared.twins else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "this pipeline syncs no twins (it has no [twin] table)",
        ));
    };
    let (reply, answer) = oneshot::channel();
    let gone = || error(StatusCode::SERVICE_UNAVAILABLE, "the twin sync has stopped");
    twins.send(make(reply)).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())
}

/// `GET /twins`: the things whose twins this host syncs.
async fn twins(State(shared): State<Arc<Shared>>) -> Result<Response, Failure> {
    let things = ask_twins(&shared, crate::twin::commands::TwinCommand::List).await?;
    Ok(Json(things).into_response())
}

/// `GET /twins/{thing}`: the local copy of one twin (there offline too).
async fn twin(
    State(shared): State<Arc<Shared>>,
    Path(thing): Path<String>,
) -> Result<Response, Failure> {
    let view = ask_twins(&shared, |reply| crate::twin::commands::TwinCommand::Get {
        thing: thing.clone(),
        reply,
    })
    .await?;
    match view {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("no twin `{thing}` here"),
        )),
    }
}

/// `PATCH /twins/{thing}` with `{"desired": {…}}`: changes desired state on
/// the site; it acts at once and reaches the shadow service when it can.
async fn set_desired(
    State(shared): State<Arc<Shared>>,
    Path(thing): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Some(serde_json::Value::Object(patch)) = body.get("desired").cloned() else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body is {\"desired\": {…}}: the fields to change (null deletes one)",
        ));
    };
    let depth = crate::twin::document::depth(&serde_json::Value::Object(patch.clone()));
    if depth > crate::twin::document::MAX_DEPTH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "desired state nests at most {} levels",
                crate::twin::document::MAX_DEPTH
            ),
        ));
    }
    let result = ask_twins(&shared, |reply| {
        crate::twin::commands::TwinCommand::SetDesired {
            thing,
            patch,
            reply,
        }
    })
    .await?;
    match result {
        Ok(view) => Ok(Json(view).into_response()),
        Err(e) => Err(error(StatusCode::NOT_FOUND, e)),
    }
}
