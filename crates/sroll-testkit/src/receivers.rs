//! The fake receivers of a chaos run served together on one local HTTP server: Slack
//! ([`crate::fakes::Slack`]), the release callback ([`crate::fakes::Receiver`] at `/callback`) and
//! a Consul agent ([`crate::fakes::Consul`]) whose service [`CONSUL_SERVICE`] lists every pod of the
//! test namespace as passing. Slack posts and applied callbacks are reported to the invariant
//! checker, so a duplicated Slack message or a callback applied twice is a violation.
//!
//! [`Fakes::hang`] turns all of them into a tarpit (see [`crate::fakes::Server::hang`]).
//!
//! Usable with the in-process operator ([`Fakes::settings`]) and with the `sroll operator`
//! process ([`Fakes::flags`], as `crates/sroll/tests/operator_process.rs` does).

use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use sroll_api::{Bapi, NotificationLevel, Notifications, StatefulsetRollout};
use sroll_operator::{
    Settings,
    integrations::{IntegrationSettings, SecretLocation},
};

use crate::{
    Env, Rollout,
    fakes::{self, Consul, Fake, Receiver, Server, Slack, slack::rollout_field},
};

/// The Slack bot token stored in the test namespace's Secret.
pub const TOKEN: &str = "xoxb-chaos-token";

/// The Consul service whose instances are the namespace's pods.
pub const CONSUL_SERVICE: &str = "app";

/// What the fake receivers saw.
#[derive(Debug, Default)]
pub struct Received {
    /// The `Rollout:` field of every posted first message of a rollout.
    pub slack_posts: Vec<String>,
    /// Further pages posted (messages without a `Rollout:` field).
    pub slack_more_pages: usize,
    /// `chat.update` calls.
    pub slack_updates: usize,
    /// `(stageId, outcome)` of every applied callback.
    pub callbacks: Vec<(String, String)>,
    /// Deliveries repeating an applied key: an operator killed between the receiver's 2xx and
    /// its status write sends again, with the same key (at-least-once delivery).
    pub redeliveries: usize,
}

/// The running fakes.
pub struct Fakes {
    /// The server of all of them.
    pub server: Server,
    /// The Slack fake.
    pub slack: Slack,
    /// The callback receiver.
    pub callback: Receiver,
    /// The Consul fake.
    pub consul: Consul,
    /// The Secret holding [`TOKEN`] in the test namespace.
    pub slack_secret: SecretLocation,
}

impl Fakes {
    /// Starts the fakes and stores the Slack token in `env`'s namespace.
    pub async fn start(env: &Env) -> Self {
        let checker = env.checker.clone();
        let slack = Slack::new(TOKEN).observe_posts(Arc::new(move |body| {
            // The first message of a rollout carries its identity; further pages (more than 50
            // pods in flight) do not.
            if let Some(key) = rollout_field(body) {
                checker.slack_posted(&key);
            }
        }));
        let checker = env.checker.clone();
        let callback = Receiver::new("/callback").observe_applied(Arc::new(move |call| {
            assert!(
                !call.key.is_empty(),
                "every callback carries an Idempotency-Key"
            );
            // A new key: the checker flags a second *applied* delivery of the same
            // (stage, outcome), i.e. a retry that changed its key.
            checker.callback_delivered(
                call.body["stageId"].as_str().unwrap_or_default(),
                call.body["outcome"].as_str().unwrap_or_default(),
            );
        }));
        let pods = env.pod_api();
        let consul = Consul::new().computed(
            CONSUL_SERVICE,
            Arc::new(move || pod_instances(pods.clone(), |_| true).boxed()),
        );
        let server = fakes::serve(
            slack
                .router()
                .merge(callback.router())
                .merge(consul.router()),
        )
        .await
        .expect("the fake receivers start");
        let slack_secret = env.slack_token_secret(TOKEN).await;
        Self {
            server,
            slack,
            callback,
            consul,
            slack_secret,
        }
    }

    /// What they saw so far.
    pub fn received(&self) -> Received {
        let slack = self.slack.state();
        let callback = self.callback.state();
        Received {
            slack_posts: slack.rollout_posts(),
            slack_more_pages: slack.more_pages(),
            slack_updates: slack.updates,
            callbacks: callback
                .applied_calls()
                .iter()
                .map(|c| {
                    (
                        c.body["stageId"].as_str().unwrap_or_default().to_owned(),
                        c.body["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            redeliveries: callback.redeliveries,
        }
    }

    /// See [`Server::hang`].
    pub fn hang(&self, hanging: bool) {
        self.server.hang(hanging);
    }

    /// Requests left without an answer so far.
    pub fn unanswered(&self) -> usize {
        self.server.unanswered()
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.server.answered()
    }

    /// The release callback's URL.
    pub fn callback_url(&self) -> String {
        self.server.url("/callback")
    }

    /// Settings of an in-process operator pointed at the fakes.
    pub fn settings(&self, env: &Env) -> Settings {
        Settings {
            integrations: IntegrationSettings {
                cluster_name: "kubesim-chaos".into(),
                slack_api_url: Some(self.server.url("/api")),
                slack_token_secret: Some(self.slack_secret.clone()),
                callback_allow: vec![format!("127.0.0.1:{}", self.server.addr.port())],
                consul_addr: Some(self.server.url("")),
                ..IntegrationSettings::default()
            },
            ..env.settings()
        }
    }

    /// The same, as `sroll operator` flags.
    pub fn flags(&self) -> Vec<String> {
        let s = &self.slack_secret;
        vec![
            "--cluster-name=kubesim-chaos".into(),
            format!("--slack-api-url={}", self.server.url("/api")),
            format!("--slack-token-secret={}/{}/{}", s.namespace, s.name, s.key),
            format!("--callback-allow=127.0.0.1:{}", self.server.addr.port()),
            format!("--consul-addr={}", self.server.url("")),
        ]
    }
}

/// Every pod of `pods` with an IP that `keep` keeps, passing: a [`fakes::consul::Source`]'s
/// instances.
pub async fn pod_instances(pods: Api<Pod>, keep: impl Fn(&Pod) -> bool) -> Vec<(String, String)> {
    pods.list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|p| keep(p))
        .filter_map(|p| Some((p.status.as_ref()?.pod_ip.clone()?, "passing".to_owned())))
        .collect()
}

/// `rollout` with a Slack channel (debug level) and a release callback for `stage`.
pub fn notified(rollout: &Rollout, url: &str, stage: &str) -> StatefulsetRollout {
    with_callback(with_slack(rollout.build()), url, stage)
}

/// `spec.channel: "#deploys"` at level `debug` (an update on every batch).
pub fn with_slack(mut r: StatefulsetRollout) -> StatefulsetRollout {
    r.spec.channel = Some(fakes::slack::CHANNEL.into());
    r.spec.notifications = Some(Notifications {
        level: Some(NotificationLevel::Debug),
        webhooks: vec![],
    });
    r
}

/// `spec.bapi`: a release callback to `url` for `stage`.
pub fn with_callback(mut r: StatefulsetRollout, url: &str, stage: &str) -> StatefulsetRollout {
    r.spec.bapi = Some(Bapi {
        url: url.into(),
        stage_id: stage.into(),
    });
    r
}
