//! `explain`: why a request is admitted or refused, without any network.
//!
//! Two halves that keep each other honest:
//!
//! - **The run.** The request goes through the real [`PolicyLayer`] in process, in front of a
//!   stand-in upstream that answers `200 {}`; the response (status, the rejection's code and
//!   message, every header the client would get) and what the upstream received are the
//!   gateway's own answer, not a model of it.
//! - **The reasons** (`steps.rs`): for each pipeline step, what in the policy and the request
//!   decides it (the route and the pattern that matched, the origin entry a CORS origin
//!   matched, the CSRF rule that let a request through, the quotas and the key they count by),
//!   computed with the same functions the layers use.
//!
//! The run decides the verdicts: the step whose refusal code the response carries is the one
//! that refused, the steps after it were not reached. One thing the run cannot do offline is
//! verify a credential (API keys live in the key store, JWKS on the identity provider): a
//! request that presents one stops at authentication, marked as undecided, rather than being
//! shown a refusal the live gateway would not give.

mod steps;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use portcullis_layers::PeerAddr;
use portcullis_layers::rejection::Rejection;
use portcullis_policy::Policy;
use serde::Serialize;
use tower::{Layer, ServiceExt};

use crate::PolicyLayer;

/// The request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub method: Method,
    /// Path and query, as the client sends them (`/v1/a/../b?x=1`).
    pub target: Uri,
    pub headers: HeaderMap,
    /// The TCP peer the gateway would see (a load balancer, or the client itself).
    pub peer: SocketAddr,
    pub body: Bytes,
}

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The step ran and let the request through.
    Pass,
    /// The step refused the request.
    Refuse,
    /// Nothing in the policy applies to this request here.
    Skip,
    /// An earlier step refused the request.
    NotReached,
    /// Only the live gateway can decide (a credential checked against the key store).
    Undecided,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Refuse => "refuse",
            Verdict::Skip => "skip",
            Verdict::NotReached => "not-reached",
            Verdict::Undecided => "undecided",
        }
    }
}

/// One pipeline step, in pipeline order.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `client-ip`, `ip-filter`, `route`, `route-ip-filter`, `cors`, `rate-limit`, `lockout`,
    /// `auth`, `csrf`, `upstream`.
    pub step: &'static str,
    pub verdict: Verdict,
    pub reason: String,
}

/// What the client would get.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `false` when the trace stopped at a credential only the live gateway can verify: then
    /// `status` is what an invalid credential gets, and a valid one goes on to the later steps.
    pub decided: bool,
    pub status: u16,
    /// The refusal's code and message, when the gateway refused.
    pub code: Option<&'static str>,
    pub message: Option<String>,
    /// Response headers, in the order the gateway set them (a correlation ID is generated per
    /// request, so its value differs from run to run).
    pub headers: Vec<(String, String)>,
    /// Whether the request reached the upstream, and the headers it arrived with.
    pub upstream: Option<Vec<(String, String)>>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub method: String,
    pub target: String,
    pub environment: String,
    /// The route the request matched, if the path could be normalised.
    pub route: Option<String>,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
}

/// Runs `request` through `policy`'s pipeline and says why it ends as it does.
pub async fn explain(policy: Arc<Policy>, request: ExplainRequest) -> Explanation {
    let reasons = steps::reasons(&policy, &request);
    let run = run(policy.clone(), request.clone()).await;
    let code = run.rejection.as_ref().map(Rejection::code);
    let refused_by = code.map(|c| reasons.step_of_code(c));
    let credential_presented = reasons.credential_presented;

    let mut steps = Vec::with_capacity(reasons.steps.len() + 1);
    let mut stopped = false;
    for (name, reason) in reasons.steps {
        let verdict = if stopped {
            Verdict::NotReached
        } else if refused_by == Some(name) {
            stopped = true;
            if name == "auth" && credential_presented {
                Verdict::Undecided
            } else {
                Verdict::Refuse
            }
        } else if reason.applies {
            Verdict::Pass
        } else {
            Verdict::Skip
        };
        let reason = match verdict {
            Verdict::Refuse => match &run.rejection {
                Some(r) => format!("{}; refused: {} ({})", reason.text, r.code(), r.message()),
                None => reason.text,
            },
            Verdict::Undecided => format!(
                "{}; the live gateway verifies the credential (key store or identity provider): `explain` runs offline and stops here",
                reason.text
            ),
            _ => reason.text,
        };
        steps.push(Step {
            step: name,
            verdict,
            reason,
        });
    }
    // A refusal no step above explains (framing, a body limit) still stops the request.
    let refused_elsewhere = run.rejection.is_some() && !stopped;
    steps.push(Step {
        step: "upstream",
        verdict: if run.upstream.is_some() {
            Verdict::Pass
        } else {
            Verdict::NotReached
        },
        reason: match (&run.upstream, &run.rejection) {
            (Some(_), _) => "forwarded (here to a stand-in answering 200 {})".to_owned(),
            (None, Some(r)) if refused_elsewhere => {
                format!("refused before routing: {} ({})", r.code(), r.message())
            }
            (None, Some(_)) => "not forwarded".to_owned(),
            (None, None) => "answered by the gateway itself".to_owned(),
        },
    });

    let decided = !steps.iter().any(|s| s.verdict == Verdict::Undecided);
    Explanation {
        method: request.method.to_string(),
        target: request.target.to_string(),
        environment: policy.environment.to_string(),
        route: reasons.route,
        steps,
        outcome: Outcome {
            decided,
            status: run.response.status().as_u16(),
            code,
            message: run.rejection.as_ref().map(|r| r.message().to_owned()),
            headers: pairs(run.response.headers()),
            upstream: run.upstream.as_ref().map(pairs),
        },
    }
}

struct Run {
    response: Response<Full<Bytes>>,
    rejection: Option<Rejection>,
    upstream: Option<HeaderMap>,
}

/// The request through the real pipeline, in front of a stand-in upstream that records what
/// it receives.
async fn run(policy: Arc<Policy>, request: ExplainRequest) -> Run {
    let received: Arc<Mutex<Option<HeaderMap>>> = Arc::default();
    let upstream = {
        let received = received.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let received = received.clone();
            async move {
                *received.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(req.headers().clone());
                let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    let service = PolicyLayer::new(policy).layer(upstream);
    let mut req = Request::new(Full::new(request.body));
    *req.method_mut() = request.method;
    *req.uri_mut() = request.target;
    *req.headers_mut() = request.headers;
    req.extensions_mut().insert(PeerAddr(request.peer));
    let response = match service.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let rejection = response.extensions().get::<Rejection>().cloned();
    let upstream = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Run {
        response,
        rejection,
        upstream,
    }
}

fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}
