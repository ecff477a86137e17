//! What the local API needs before it serves, made while the pipeline's
//! plugins load: its token (read, or made and written) and the metrics
//! recorder (whose clock calibrates when built).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::RunOptions;
use crate::api::Token;
use crate::config::LoadedPipeline;

/// The API's token and metrics, ready for [`crate::api::Api::start`].
pub(crate) struct ApiReady {
    /// Who may call the API.
    pub(crate) token: Token,
    /// Counters and histograms, for `GET /metrics`; `None` if another
    /// recorder was installed first.
    pub(crate) metrics: Option<PrometheusHandle>,
}

impl ApiReady {
    /// Makes them ready; `None` when `[api] enabled = false`. The recorder
    /// is installed here, before any component records.
    pub(crate) fn prepare(
        pipeline: &LoadedPipeline,
        options: &RunOptions,
    ) -> Result<Option<ApiReady>, String> {
        let api = &pipeline.config.api;
        if !api.enabled {
            return Ok(None);
        }
        let token_file = api
            .token_file
            .as_ref()
            .map(|f| pipeline.resolve(f.get_ref()));
        let token =
            Token::resolve(token_file.as_deref(), &options.state_dir).map_err(|e| e.to_string())?;
        let metrics = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| tracing::warn!("no metrics: {e}"))
            .ok();
        Ok(Some(ApiReady { token, metrics }))
    }
}
