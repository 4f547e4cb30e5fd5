//! The crate's error type. Messages never contain a token or a secret header: tokens live in types
//! whose `Debug` is redacted and are only ever written into request headers.

use std::time::Duration;

/// Errors of the integrations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (TLS setup).
    #[error("failed to build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// An entry of `--callback-allow` is not a host pattern.
    #[error("failed to parse allowlist entry {entry:?}: {reason}")]
    AllowlistEntry {
        /// The entry as given.
        entry: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A URL could not be parsed or is not http(s).
    #[error("failed to parse URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The destination is not allowed (allowlist, link-local or metadata address).
    #[error("refused to call {host}: {reason}")]
    Refused {
        /// The host that was refused.
        host: String,
        /// Why.
        reason: String,
    },
    /// The request did not complete (connect error, timeout, reset).
    #[error("failed to reach {what}: {message}")]
    Transport {
        /// What was called.
        what: String,
        /// The transport error, without credentials.
        message: String,
    },
    /// The server answered with a non-success HTTP status.
    #[error("failed to call {what}: HTTP {status}")]
    Status {
        /// What was called.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Slack answered `"ok": false`.
    #[error("failed to call Slack {method}: {code}")]
    Slack {
        /// The Web API method.
        method: &'static str,
        /// Slack's `error` code (`channel_not_found`, `invalid_auth`, …).
        code: String,
    },
    /// The response body was not what the API documents.
    #[error("failed to decode the response of {what}: {message}")]
    Decode {
        /// What was called.
        what: String,
        /// The decoding error.
        message: String,
    },
    /// A bounded queue is full; the item was dropped.
    #[error("failed to queue {what}: the queue is full")]
    QueueFull {
        /// What was dropped.
        what: &'static str,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable, low-cardinality label for metrics and events.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::HttpClient(_) => "http_client",
            Self::AllowlistEntry { .. } => "allowlist_entry",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::Refused { .. } => "refused",
            Self::Transport { .. } => "transport",
            Self::Status { .. } => "status",
            Self::Slack { .. } => "slack",
            Self::Decode { .. } => "decode",
            Self::QueueFull { .. } => "queue_full",
        }
    }

    /// Whether trying the same request again later may succeed (network trouble, 5xx, 408, 425,
    /// 429). Refusals, bad URLs and other 4xx answers are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::QueueFull { .. } => true,
            Self::Status { status, .. } => *status >= 500 || matches!(status, 408 | 425 | 429),
            Self::Slack { code, .. } => matches!(
                code.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
            _ => false,
        }
    }

    /// The delay the server asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn transport(what: impl Into<String>, err: &reqwest::Error) -> Self {
        // `reqwest::Error`'s Display includes the URL (never a token: tokens travel in headers).
        // Walk the source chain so "connection refused" or "timed out" is visible.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        if err.is_timeout() && !message.contains("timed out") {
            message.push_str(" (timed out)");
        }
        Self::Transport {
            what: what.into(),
            message,
        }
    }
}
