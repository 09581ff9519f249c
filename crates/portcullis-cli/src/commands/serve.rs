//! `portcullis serve`: the gateway in front of an upstream, and the admin API beside it when
//! the policy has `[admin]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use portcullis::admin::AdminServer;
use portcullis::policy::{Environment, Policy, UpstreamSettings, parse_upstream_url};
use portcullis::{Gateway, shutdown_signal, telemetry};

use super::{failure, load_policy, runtime};

#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub environment: Option<Environment>,
}

pub fn run(args: Args) -> ExitCode {
    let compiled = match load_policy(&args.config, args.environment, "; not starting") {
        Ok(compiled) => compiled,
        Err(not_loaded) => return not_loaded.exit_code(),
    };
    let mut policy = compiled.policy;
    if let Some(listen) = args.listen {
        policy.server.listen = listen;
    }
    if let Some(url) = &args.upstream {
        match parse_upstream_url(url) {
            Ok(url) => match &mut policy.upstream {
                Some(upstream) => upstream.url = url,
                None => policy.upstream = Some(UpstreamSettings::new(url)),
            },
            Err(message) => return failure(format!("--upstream: {message}")),
        }
    }
    serve(policy, None)
}

/// Runs a compiled policy until SIGTERM/SIGINT. `banner` is printed once listening.
pub fn serve(policy: Policy, banner: Option<Box<dyn FnOnce(SocketAddr) + Send>>) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return failure(format!("cannot start the runtime: {e}")),
    };
    let _logging = telemetry::init(&policy.logging);
    runtime.block_on(async move {
        let environment = policy.environment;
        let upstream = policy.upstream.as_ref().map(|u| u.url.to_string());
        // Before the gateway: an unusable admin token stops the start before anything listens.
        let admin = match AdminServer::bind(&policy).await {
            Ok(admin) => admin,
            Err(e) => return failure(e),
        };
        let gateway = match Gateway::bind(policy).await {
            Ok(g) => g,
            Err(e) => return failure(e),
        };
        // Logged before the gateway's line, which tests and scripts wait for: once that is
        // printed, both addresses are known.
        if let Some(admin) = &admin {
            tracing::info!("admin API on http://{}", admin.local_addr());
        }
        let addr = gateway.local_addr();
        tracing::info!(%environment, upstream, "listening on http://{addr}");
        if let Some(banner) = banner {
            // The banner goes to stdout directly: the log lines before it come first.
            telemetry::flush();
            banner(addr);
        }
        // One signal stops both: dropping `stop` wakes the admin server's receiver.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let admin = admin.map(|admin| {
            let mut stopped = stopped;
            tokio::spawn(admin.serve(async move {
                let _ = stopped.changed().await;
            }))
        });
        gateway
            .serve(async move {
                shutdown_signal().await;
                drop(stop);
            })
            .await;
        if let Some(admin) = admin
            && let Err(e) = admin.await
        {
            tracing::warn!(error = %e, "the admin API stopped abnormally");
        }
        ExitCode::SUCCESS
    })
}
