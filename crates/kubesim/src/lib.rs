//! kubesim: a simulated Kubernetes cluster behind a real HTTP API.
//!
//! Real clients (`kubectl`, kube-rs, client-go, the Python client) talk to it
//! over HTTP as they would to a small real cluster. It is the cluster of
//! `sroll demo`, of the test suite and of the benchmarks. Behaviour follows
//! upstream Kubernetes; where it simplifies, the doc comment of the item says
//! so and names the upstream file.
#![forbid(unsafe_code)]

pub mod controllers;
pub mod eviction;
pub mod faults;
pub mod kubelet;
pub mod openapi;
pub mod patch;
pub mod schema;
pub mod table;
