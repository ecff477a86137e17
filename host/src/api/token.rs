//! The API's bearer token.

use std::path::Path;

use super::ApiError;
use crate::files::{Lasting, write_private};

/// A bearer token. Compared in constant time.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The token from `EDDY_API_TOKEN`, else from `file`, else a random one
    /// written to `api.token` in `state_dir` (mode 0600).
    pub fn resolve(file: Option<&Path>, state_dir: &Path) -> Result<Token, ApiError> {
        if let Some(token) = std::env::var("EDDY_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            return Ok(Token(token));
        }
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).map_err(|error| ApiError::File {
                path: file.to_owned(),
                error,
            })?;
            return Ok(Token(text.trim().to_owned()));
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| ApiError::File {
            path: state_dir.join("api.token"),
            error: std::io::Error::other(e.to_string()),
        })?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = state_dir.join("api.token");
        // A new token is written at every start: it need not outlive this run.
        write_private(&path, token.as_bytes(), Lasting::ThisRun)
            .map_err(|error| ApiError::File { path, error })?;
        Ok(Token(token))
    }

    /// Whether `offered` is this token.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
