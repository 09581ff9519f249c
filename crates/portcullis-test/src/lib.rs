//! Test fixtures for Portcullis: a real upstream that reports what it received, a real
//! gateway process on an ephemeral loopback port, a server of fixed pages for browsers, an
//! HTTP client and a raw-bytes client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod gateway;
pub mod pages;
pub mod upstream;
pub mod websocket;

pub use client::{Client, Reply, raw_exchange};
pub use gateway::{GatewayProcess, json_line};
pub use pages::{Page, PageServer};
pub use upstream::{Received, TestUpstream};
pub use websocket::{WsClient, WsUpstream};
