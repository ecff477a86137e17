//! The client side, for `eddy status` and `eddy plugin swap|reset`: finds
//! the API of the `eddy run` on this host through the state directory, or
//! takes an explicit URL and token.

use std::path::Path;
use std::time::Duration;

use super::{Endpoint, SwapAnswer};
use crate::dataflow::control::PipelineStatus;
use crate::twin::commands::TwinView;

/// Where to send requests, and the token.
pub struct Client {
    url: String,
    token: String,
    agent: ureq::Agent,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No API to talk to.
    #[error(
        "no running eddy found: {0} (is `eddy run` running with the same --state-dir? or pass --api and --api-token)"
    )]
    NotFound(String),
    /// The API answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The request failed on the way.
    #[error("cannot reach the eddy API at {url}: {error}")]
    Transport {
        /// Where.
        url: String,
        /// Why.
        error: String,
    },
}

impl Client {
    /// A client for `url` and `token`, each found in `state_dir` when not given.
    pub fn new(
        url: Option<String>,
        token: Option<String>,
        state_dir: &Path,
    ) -> Result<Client, ClientError> {
        let url = match url {
            Some(url) => url,
            None => {
                let path = state_dir.join("api.json");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ClientError::NotFound(format!("{}: {e}", path.display())))?;
                let endpoint: Endpoint = serde_json::from_str(&text)
                    .map_err(|e| ClientError::NotFound(format!("{}: {e}", path.display())))?;
                endpoint.url
            }
        };
        let token = match token {
            Some(token) => token,
            None => {
                let path = state_dir.join("api.token");
                std::fs::read_to_string(&path)
                    .map_err(|e| ClientError::NotFound(format!("{}: {e}", path.display())))?
                    .trim()
                    .to_owned()
            }
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Client {
            url: url.trim_end_matches('/').to_owned(),
            token,
            agent,
        })
    }

    /// Sends a request again while the API answers 503 or 429 (it serves a
    /// few requests at once, a few hundred a second, and refuses more), for
    /// up to two seconds.
    fn retrying(
        &self,
        send: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let response = send().map_err(|e| self.transport(e))?;
            let busy = matches!(response.status().as_u16(), 429 | 503);
            if !busy || std::time::Instant::now() >= deadline {
                return Ok(response);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<PipelineStatus, ClientError> {
        let response = self.retrying(|| {
            self.agent
                .get(format!("{}/status", self.url))
                .header("Authorization", format!("Bearer {}", self.token))
                .call()
        })?;
        self.json(response)
    }

    /// `PUT …/plugin`: swaps in `plugin` (the bytes of a `.wasm` or bundle).
    pub fn swap(
        &self,
        pipeline: &str,
        operator: &str,
        plugin: &[u8],
        reset_state: bool,
    ) -> Result<SwapAnswer, ClientError> {
        let response = self.retrying(|| {
            self.agent
                .put(format!(
                    "{}/pipelines/{pipeline}/operators/{operator}/plugin?reset_state={reset_state}",
                    self.url
                ))
                .header("Authorization", format!("Bearer {}", self.token))
                .header("Content-Type", "application/octet-stream")
                .send(plugin)
        })?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let text = body.read_to_string().map_err(|e| self.transport(e))?;
        match serde_json::from_str::<SwapAnswer>(&text) {
            Ok(answer) => Ok(answer),
            Err(_) => Err(ClientError::Refused(format!(
                "HTTP {status}: {}",
                error_of(&text)
            ))),
        }
    }

    /// `POST …/reset`.
    pub fn reset(&self, pipeline: &str, operator: &str) -> Result<(), ClientError> {
        let response = self.retrying(|| {
            self.agent
                .post(format!(
                    "{}/pipelines/{pipeline}/operators/{operator}/reset",
                    self.url
                ))
                .header("Authorization", format!("Bearer {}", self.token))
                .send_empty()
        })?;
        self.json::<serde_json::Value>(response).map(drop)
    }

    /// The things whose twins the running eddy syncs.
    pub fn twins(&self) -> Result<Vec<String>, ClientError> {
        let response = self.retrying(|| {
            self.agent
                .get(format!("{}/twins", self.url))
                .header("Authorization", format!("Bearer {}", self.token))
                .call()
        })?;
        self.json(response)
    }

    /// One twin, as the running eddy holds it (there offline too).
    pub fn twin(&self, thing: &str) -> Result<TwinView, ClientError> {
        let response = self.retrying(|| {
            self.agent
                .get(format!("{}/twins/{thing}", self.url))
                .header("Authorization", format!("Bearer {}", self.token))
                .call()
        })?;
        self.json(response)
    }

    /// Changes a twin's desired state on the site.
    pub fn set_desired(
        &self,
        thing: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<TwinView, ClientError> {
        let body = serde_json::json!({ "desired": patch }).to_string();
        let response = self.retrying(|| {
            self.agent
                .patch(format!("{}/twins/{thing}", self.url))
                .header("Authorization", format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
        })?;
        self.json(response)
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<T, ClientError> {
        let ok = response.status().is_success();
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        if !ok {
            return Err(ClientError::Refused(format!(
                "HTTP {status}: {}",
                error_of(&text)
            )));
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Refused(format!("bad answer: {e}")))
    }

    fn transport(&self, error: ureq::Error) -> ClientError {
        ClientError::Transport {
            url: self.url.clone(),
            error: error.to_string(),
        }
    }
}

/// The `error` of a JSON error answer, or the text itself.
fn error_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_owned())
}
