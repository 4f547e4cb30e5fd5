//! kubesim: a simulated Kubernetes cluster behind a real HTTP API.
//!
//! Real clients (`kubectl`, kube-rs, client-go, the Python client) talk to it
//! over HTTP as they would to a small real cluster. It is the cluster of
//! `sroll demo`, of the test suite and of the benchmarks. Behaviour follows
//! upstream Kubernetes; where it simplifies, the doc comment of the item says
//! so and names the upstream file.
//!
//! Layout: [`store`] (objects, resourceVersions, watch history) ←
//! [`api`] (request semantics, in-process API, garbage collector) ←
//! the HTTP server. [`registry`] lists the served resources; [`patch`] and
//! [`schema`] are the pure patch and validation machinery.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod api;
pub mod app_metrics;
pub mod auth;
pub mod binding;
pub mod cli;
pub mod cluster;
pub mod controllers;
pub mod eviction;
pub mod faults;
pub mod kubelet;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use api::{Api, ApiError};
