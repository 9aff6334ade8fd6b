//! The errors a request can end in, each with the short code clients see (`-ERR wrongtype ...`).

use serde::{Deserialize, Serialize};

/// Why a request failed. Every variant maps to a stable [`ErrorCode`] clients can match on; the
/// message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepotError {
    #[error("{0}")]
    Parse(#[from] crate::protocol::ParseError),
    #[error("value at `{key}` holds {found}, not {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("value at `{0}` is not an integer")]
    NotAnInteger(String),
    #[error("increment of `{0}` would overflow")]
    Overflow(String),
    #[error("no job {0}")]
    NoSuchJob(u64),
    #[error("job {id} is {state}; cannot {action} it")]
    InvalidTransition {
        id: u64,
        state: &'static str,
        action: &'static str,
    },
    #[error("job {id} is reserved by another worker")]
    NotYourJob { id: u64 },
    #[error("queue `{0}` is full")]
    QueueFull(String),
    #[error("say `AUTH <token>` first")]
    AuthRequired,
    #[error("wrong token")]
    BadToken,
    #[error("too many requests; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("state unavailable: {0}")]
    State(String),
}

impl DepotError {
    /// The stable code of the error, the first word after `-ERR`.
    pub fn code(&self) -> ErrorCode {
        match self {
            DepotError::Parse(_) => ErrorCode::Syntax,
            DepotError::WrongType { .. } => ErrorCode::WrongType,
            DepotError::NotAnInteger(_) | DepotError::Overflow(_) => ErrorCode::Value,
            DepotError::NoSuchJob(_) => ErrorCode::NotFound,
            DepotError::InvalidTransition { .. } | DepotError::NotYourJob { .. } => {
                ErrorCode::Conflict
            }
            DepotError::QueueFull(_) => ErrorCode::Full,
            DepotError::AuthRequired | DepotError::BadToken => ErrorCode::Auth,
            DepotError::RateLimited { .. } => ErrorCode::Busy,
            DepotError::State(_) => ErrorCode::Internal,
        }
    }
}

impl From<hotreload_runtime::state::StateError> for DepotError {
    fn from(error: hotreload_runtime::state::StateError) -> Self {
        DepotError::State(error.to_string())
    }
}

/// The kinds of failure a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorCode {
    Syntax,
    WrongType,
    Value,
    NotFound,
    Conflict,
    Full,
    Auth,
    Busy,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Syntax => "syntax",
            ErrorCode::WrongType => "wrongtype",
            ErrorCode::Value => "value",
            ErrorCode::NotFound => "notfound",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Full => "full",
            ErrorCode::Auth => "auth",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_lowercase_words() {
        let error = DepotError::WrongType {
            key: "k".into(),
            expected: "a list",
            found: "text",
        };
        assert_eq!(error.code().as_str(), "wrongtype");
        assert_eq!(error.to_string(), "value at `k` holds text, not a list");
        let json = serde_json::to_string(&ErrorCode::NotFound).unwrap();
        assert_eq!(json, "\"notfound\"");
    }

    #[test]
    fn rate_limits_say_when_to_come_back() {
        let error = DepotError::RateLimited { retry_after_ms: 40 };
        assert_eq!(error.code(), ErrorCode::Busy);
        assert!(error.to_string().contains("40 ms"));
    }
}
