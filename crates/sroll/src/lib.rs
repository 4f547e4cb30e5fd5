//! The `sroll` binary's library half: every subcommand's implementation, so tests and other tools
//! can drive them without a process (thin binary, fat library).
//!
//! - [`bench`]: `sroll bench`, rollout speed and operator cost on the simulated cluster.
//! - [`dashboard`]: `sroll dashboard`, the live web view of rollouts and CloneSets (and the
//!   rollouts' actions).
//! - [`demo`]: kubesim + the operator in one process ([`demo::Embedded`]) and the scripted release.
//! - [`plugin`]: the kubectl plugin verbs.
//! - [`render`]: the app config → PodDisruptionBudget + StatefulsetRollout renderer.
//! - [`operator`]: the `sroll operator` flags and start-up.
#![forbid(unsafe_code)]

pub mod bench;
pub mod dashboard;
pub mod demo;
pub mod operator;
pub mod plugin;
pub mod render;
