//! Portcullis: an API security gateway driven by one reviewable policy file.
//!
//! - [`PolicyLayer`] turns a compiled [`policy::Policy`] into one `tower` layer: mount it around
//!   an axum/hyper service to get the same checks the gateway runs (see `examples/axum-app`).
//! - [`Gateway`] binds a listener and runs the layer in front of the reverse [`proxy::Proxy`]:
//!   that is `portcullis serve`.
//! - [`key_admin`] is API-key administration (the actions, audit records and JSON views) for
//!   both `portcullis keys` and the admin HTTP API, [`admin::AdminServer`].
//!
//! The policy is parsed by [`policy`] (re-exported `portcullis-policy`); the layers live in
//! [`layers`] (re-exported `portcullis-layers`).

pub mod admin;
pub mod cross_origin;
mod error_chain;
pub mod explain;
mod graceful;
mod identity;
pub mod jwt_keys;
pub mod key_admin;
pub mod key_store;
pub mod lockouts;
pub mod proxy;
pub mod rate_limits;
pub mod revocations;
pub mod routing;
pub mod secret_source;
pub mod security_txt;
pub mod server;
pub mod signing;
pub mod stack;
mod store_outage;
pub mod telemetry;
pub mod tenant_rates;
pub mod wire_framing;

pub use portcullis_layers as layers;
pub use portcullis_policy as policy;

pub use error_chain::error_chain;
pub use server::{Gateway, ServeError, shutdown_signal};
pub use stack::{BrowserChecks, PolicyLayer, PolicyService};
