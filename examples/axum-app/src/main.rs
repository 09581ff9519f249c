//! An axum service with the Portcullis checks mounted as a tower layer: the same posture as
//! `portcullis serve`, without a proxy hop.
//!
//! ```sh
//! cargo run -p portcullis-example-axum -- examples/axum-app/policy.toml 127.0.0.1:3000
//! curl -i http://127.0.0.1:3000/account/me
//! ```
//!
//! The layer wraps the whole router (not `Router::layer`, which runs after routing), so the
//! router sees the normalised path the policy matched.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use portcullis::PolicyLayer;
use portcullis::policy::{CompileOptions, load_file};
use tower::Layer;

/// The application: plain axum, no knowledge of the policy.
pub fn app() -> Router {
    Router::new()
        .route("/status", get(|| async { r#"{"status":"ok"}"# }))
        .route("/account/me", get(|| async { r#"{"id":"acct_1"}"# }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let policy_path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "examples/axum-app/policy.toml".into()),
    );
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;

    let compiled = load_file(&policy_path, &CompileOptions::default()).map_err(|e| match e {
        portcullis::policy::LoadError::Invalid(d) => anyhow::anyhow!("{}", d.render()),
        other => anyhow::anyhow!(other),
    })?;
    // Kept until main returns: dropping it writes the log lines still buffered.
    let _logging = portcullis::telemetry::init(&compiled.policy.logging);

    let service = PolicyLayer::new(compiled.policy).layer(app());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("axum + portcullis listening on http://{addr}");
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
    )
    .with_graceful_shutdown(portcullis::shutdown_signal())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use portcullis::policy::load_str;
    use tower::ServiceExt;

    use super::*;

    fn service() -> portcullis::PolicyService<Router> {
        let policy = include_str!("../policy.toml");
        let compiled = load_str("policy.toml", policy, &CompileOptions::default()).unwrap();
        PolicyLayer::new(compiled.policy).layer(app())
    }

    #[tokio::test]
    async fn the_router_gets_the_policy_posture() {
        let res = service()
            .oneshot(
                Request::get("/account/me")
                    .header("host", "a")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store, private");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers().contains_key("x-correlation-id"));
    }

    #[tokio::test]
    async fn the_router_routes_on_the_normalised_path() {
        let res = service()
            .oneshot(
                Request::get("/status/../account//me")
                    .header("host", "a")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store, private");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"id":"acct_1"}"#);
    }

    #[tokio::test]
    async fn refusals_are_the_json_error() {
        let res = service()
            .oneshot(
                Request::get("/a%2Fb")
                    .header("host", "a")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let id = res.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["correlation_id"], id.as_str());
    }
}
