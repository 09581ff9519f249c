//! `portcullis explain`: one request through the compiled pipeline, offline, with each step's
//! decision and reason, and the response the client would get. See
//! [`portcullis::explain`] for how it is computed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use portcullis::explain::{ExplainRequest, Explanation, explain};
use portcullis::policy::Environment;

use super::{EXIT_FAILURE, failure, load_policy};

#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub environment: Option<Environment>,
    pub method: String,
    pub target: String,
    pub headers: Vec<String>,
    pub peer: SocketAddr,
    pub data: Option<String>,
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let request = match request(&args) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let compiled = match load_policy(&args.config, args.environment, "") {
        Ok(compiled) => compiled,
        Err(not_loaded) => return not_loaded.exit_code(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return failure(format!("cannot start the runtime: {e}")),
    };
    let explanation = runtime.block_on(explain(Arc::new(compiled.policy), request));
    if args.json {
        match serde_json::to_string_pretty(&explanation) {
            Ok(json) => outln!("{json}"),
            Err(e) => return failure(e),
        }
    } else {
        out!("{}", render(&explanation));
    }
    ExitCode::SUCCESS
}

fn request(args: &Args) -> Result<ExplainRequest, String> {
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", args.method))?;
    if !args.target.starts_with('/') {
        return Err(format!(
            "`{}`: give the path as the client sends it, starting with `/`",
            args.target
        ));
    }
    let target: Uri = args
        .target
        .parse()
        .map_err(|e| format!("`{}` is not a request target: {e}", args.target))?;
    let mut headers = HeaderMap::new();
    for line in &args.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("`{line}`: write a header as `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    let body = args
        .data
        .as_ref()
        .map(|d| Bytes::from(d.clone()))
        .unwrap_or_default();
    if !body.is_empty() && !headers.contains_key(http::header::CONTENT_LENGTH) {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(ExplainRequest {
        method,
        target,
        headers,
        peer: args.peer,
        body,
    })
}

/// The human-readable trace.
fn render(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({} environment)",
        e.method, e.target, e.environment
    );
    let width = e.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    for step in &e.steps {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<11}  {}",
            step.step,
            step.verdict.as_str(),
            step.reason
        );
    }
    let undecided = !e.outcome.decided;
    let _ = write!(out, "\n=> {}", e.outcome.status);
    if undecided {
        let _ = write!(
            out,
            " if the credential is not valid; with a valid one, the steps after authentication decide"
        );
    } else if let (Some(code), Some(message)) = (e.outcome.code, &e.outcome.message) {
        let _ = write!(out, " {code}: {message}");
    }
    let _ = writeln!(out);
    if !undecided {
        let _ = writeln!(out, "response headers:");
        for (name, value) in &e.outcome.headers {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    if let Some(upstream) = &e.outcome.upstream {
        let _ = writeln!(
            out,
            "the upstream receives (before the proxy adds its forwarding headers):"
        );
        for (name, value) in upstream {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    out
}
