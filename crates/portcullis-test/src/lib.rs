//! Test fixtures for Portcullis: a real upstream that reports what it received, a real
//! gateway process on an ephemeral loopback port, an HTTP client and a raw-bytes client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod gateway;
pub mod upstream;

pub use client::{Client, Reply, raw_exchange};
pub use gateway::GatewayProcess;
pub use upstream::{Received, TestUpstream};
