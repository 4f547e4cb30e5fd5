//! A minimal Slack Web API client: `chat.postMessage` and `chat.update` with a bot token.
//!
//! Request and response shapes follow Slack's documentation (<https://api.slack.com/web>): JSON
//! bodies with `Authorization: Bearer <token>`; answers are HTTP 200 with `"ok": true|false` and an
//! `error` code, or HTTP 429 with `Retry-After` (seconds) when rate limited. Mattermost's
//! Slack-compatible endpoints take the same shapes (`--slack-api-url`).

use std::{fmt, time::Duration};

use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

use super::blocks::Page;
use crate::{
    Error, Result, SecretToken,
    http::{Timeouts, client, retry_after},
};

/// The public Slack Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// A posted message: the channel id Slack resolved and the message timestamp (its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedMessage {
    /// Channel id (`C…`), needed by `chat.update`.
    pub channel: String,
    /// Message timestamp (`1700000000.000100`).
    pub ts: String,
}

/// Slack Web API client for one workspace (one token).
#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: Url,
    token: SecretToken,
}

impl fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

impl SlackClient {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_API_URL`]; a trailing `/` is added).
    pub fn new(base_url: &str, token: SecretToken, timeouts: Timeouts) -> Result<Self> {
        let mut text = base_url.to_owned();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base = crate::http::http_base_url(base_url, &text, "the Slack API URL")?;
        Ok(Self {
            http: client(timeouts, false)?,
            base,
            token,
        })
    }

    /// `chat.postMessage`: posts `page` to `channel` (a name like `#deploys` or an id).
    pub async fn post_message(&self, channel: &str, page: &Page) -> Result<PostedMessage> {
        let body = json!({
            "channel": channel,
            "text": page.text,
            "blocks": page.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let answer = self.call("chat.postMessage", &body).await?;
        match (answer.channel, answer.ts) {
            (Some(channel), Some(ts)) => Ok(PostedMessage { channel, ts }),
            _ => Err(Error::Decode {
                what: "Slack chat.postMessage".into(),
                message: "the answer has no channel or ts".into(),
            }),
        }
    }

    /// `chat.update`: replaces the message `ts` in `channel` (an id) with `page`.
    pub async fn update_message(&self, channel: &str, ts: &str, page: &Page) -> Result<()> {
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": page.text,
            "blocks": page.blocks,
        });
        self.call("chat.update", &body).await.map(drop)
    }

    async fn call(&self, method: &'static str, body: &serde_json::Value) -> Result<Answer> {
        let what = format!("Slack {method}");
        let url = self.base.join(method).map_err(|e| Error::InvalidUrl {
            url: self.base.to_string(),
            reason: e.to_string(),
        })?;
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Status {
                what,
                status: status.as_u16(),
                retry_after: retry_after(response.headers())
                    .or_else(|| (status.as_u16() == 429).then_some(Duration::from_secs(1))),
            });
        }
        let answer: Answer = response.json().await.map_err(|e| Error::Decode {
            what,
            message: e.to_string(),
        })?;
        if answer.ok {
            Ok(answer)
        } else {
            Err(Error::Slack {
                method,
                code: answer.error.unwrap_or_else(|| "unknown_error".into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = SecretToken::new(" xoxb-secret-value\n");
        let client =
            SlackClient::new("http://127.0.0.1:1/api", token, Timeouts::default()).expect("client");
        let shown = format!("{client:?} {:?}", client.token);
        assert!(!shown.contains("xoxb"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:1/api/"), "{shown}");
    }
}
