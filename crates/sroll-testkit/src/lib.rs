//! sroll's one test kit: everything a test (or a demonstration) needs to run the real operator
//! against a simulated cluster and judge what it did.
//!
//! - [`stack`]: kubesim + the StatefulsetRollout CRD + the operator's own client, fallible (no
//!   panics), the base every environment below builds on: the scenario [`Env`], `sroll demo` and
//!   `sroll bench`.
//! - [`env`]: the scenario environment ([`Env`]): a cluster at [`env::SPEED`], the CRD, a fresh
//!   namespace, the [`Checker`] and the operator in-process ([`RunningOperator`]).
//! - [`process`]: the real `sroll operator` binary as a subprocess ([`OperatorProcess`]): start,
//!   SIGKILL, SIGTERM, restart, its log.
//! - [`prometheus`]: a real Prometheus server (Debian's `prometheus` binary) scraping kubesim's
//!   simulated application metrics, for the analysis tests.
//! - [`checker`] and [`evictions`]: the invariant checker (availability budget, version leaks,
//!   status regressions, duplicated side effects, operator exits and panics) and an eviction watch.
//! - [`clone_set`]: a CloneSet fixture and the CloneSet invariant checker (surge, availability,
//!   partition bounds, judged on every pod event).
//! - [`fixture`]: fluent rollouts, `Rollout::named("web").replicas(8).image("app:v2")`.
//! - [`fakes`]: one fake of each receiver the operator talks to — Slack Web API, Consul, release
//!   callback and webhook receivers — recording what they receive and able to fail, rate-limit or
//!   hang; [`receivers`] serves them together for chaos runs, reporting to the checker.
//! - [`status`]: predicates and accessors on a rollout's status (`done_at_generation`, …).
//! - [`wait_for`] (one polling helper) and [`kubectl`] (the real kubectl against kubesim), both
//!   kubesim's own ([`kubesim::testing`]), re-exported: kubesim's tests use them without depending
//!   on sroll.
//!
//! It is a dev-dependency of the crates whose tests use it, and a normal dependency of the `sroll`
//! binary crate, whose `sroll demo` and `sroll bench` run on [`stack::Stack`] and the fakes: that
//! is intended (one environment for tests, the demo and the benchmarks), and the reason the
//! fallible [`stack`] layer returns errors where the test-facing layers panic.
//!
//! Test-facing items panic on a failed expectation (that is the test's failure), so `unwrap` and
//! `expect` are how they report; the [`stack`] layer and the fakes' start-up return errors.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod checker;
pub mod clone_set;
pub mod env;
pub mod evictions;
pub mod fakes;
pub mod fixture;
pub mod process;
pub mod prometheus;
pub mod receivers;
pub mod stack;
pub mod status;

pub use kubesim::testing::{kubectl, wait_for};

pub use self::{
    checker::Checker,
    env::{DEADLINE, Env},
    fixture::Rollout,
    process::OperatorProcess,
    stack::{RunningOperator, Stack},
};
