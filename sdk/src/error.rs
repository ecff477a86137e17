//! The error an operator function returns.

use std::fmt;

/// Why an operator failed on a batch. The host logs it with the plugin's name
/// and sends the batch to the dead-letter log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// The result of an operator function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error {
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::msg(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error { message }
    }
}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        Error::msg(format_args!("encoding: {e}"))
    }
}

impl From<eddy_abi::decode::DecodeError> for Error {
    fn from(e: eddy_abi::decode::DecodeError) -> Self {
        Error::msg(format_args!("input: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(format_args!("params: {e}"))
    }
}
