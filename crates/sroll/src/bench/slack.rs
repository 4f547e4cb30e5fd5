//! The fake Slack Web API of scenario 6 (sroll-testkit's, the one the tests use): `chat.postMessage`
//! and `chat.update` as Slack documents them, counted.

use anyhow::Context;
use sroll_testkit::fakes::{Fake, Server, Slack};

/// The bot token the fake accepts.
pub const TOKEN: &str = "xoxb-sroll-bench";

/// The running fake.
pub struct FakeSlack {
    slack: Slack,
    server: Server,
}

impl FakeSlack {
    /// Serves the fake on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let slack = Slack::new(TOKEN);
        let server = slack
            .serve()
            .await
            .context("failed to start the fake Slack server")?;
        Ok(Self { slack, server })
    }

    /// The base URL to give the operator (`--slack-api-url`).
    pub fn api_url(&self) -> String {
        self.server.url("/api/")
    }

    /// (messages posted, updates) so far.
    pub fn counts(&self) -> (u64, u64) {
        let (posts, updates) = self.slack.counts();
        (posts as u64, updates as u64)
    }

    /// Stops serving.
    pub fn stop(self) {
        drop(self.server);
    }
}
