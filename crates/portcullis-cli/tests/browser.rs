//! CORS and CSRF exist for browsers, so a browser judges them: headless Chromium loads real
//! pages that call the real gateway process, in front of a real upstream, all on loopback.
//!
//! Pages come from a [`PageServer`] under several host names. Chromium maps `*.example.test`
//! to 127.0.0.1 (`--host-resolver-rules`), so one server is both `http://app.example.test:P`
//! (the origin the CORS policy allows) and `http://evil.example.test:P` (any other origin),
//! and the gateway is `http://api.example.test:G`. Each page writes its verdicts into the DOM,
//! which `--dump-dom` prints once the page is idle; the test parses them and compares them with
//! what the policy says, then checks what the upstream and the gateway's access log saw, so a
//! verdict of "blocked" cannot come from a gateway that was simply unreachable.
//!
//! Chromium only sends `Sec-Fetch-*` to potentially trustworthy origins (HTTPS, `localhost`,
//! 127.0.0.1), so the CSRF cases use `http://localhost:P` as the attacking site and
//! `http://127.0.0.1:G` as the gateway: two different sites, both trustworthy.
//!
//! These tests need Chromium (Debian's `chromium` package, or the binary named by `CHROMIUM`).
//! They are `#[ignore]`d for a plain `cargo test`; `scripts/test` runs ignored tests, and there
//! a machine without Chromium fails them with the command that installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portcullis_test::{GatewayProcess, Page, PageServer, Received, TestUpstream};
use serde_json::{Value, json};

/// The policy under test. `/api/*` has the credentialed CORS policy `app`; `/internal/*` has
/// none; `/app/*` serves HTML pages from the upstream, so it gets a CSP that lets its inline
/// script submit a form to the gateway itself (the default CSP, `default-src 'none'`, would
/// block the script).
fn policy(upstream: &str, page_port: u16, csrf_mode: &str) -> String {
    format!(
        r#"
environment = "development"

[upstream]
url = "{upstream}"

[logging]
format = "json"

[cors.app]
origins = {{ development = ["http://app.example.test:{page_port}"] }}
methods = ["GET", "POST", "PUT"]
allow-headers = ["content-type", "x-custom"]
expose-headers = ["x-correlation-id"]
max-age = "10m"
credentials = true

[[route]]
name = "api"
paths = ["/api/*"]
cors = "app"

[[route]]
name = "internal"
paths = ["/internal/*"]
reason = "No CORS policy: no other origin may read it."

[[route]]
name = "pages"
paths = ["/app/*"]

[route.headers.set]
content-security-policy = "default-src 'none'; script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"

[csrf]
mode = "{csrf_mode}"
"#
    )
}

const INSTALL: &str = "install chromium: apt-get install -y chromium \
                       (or set CHROMIUM to a Chromium binary)";

/// A Chromium binary that answered `--version`.
struct Chromium {
    program: String,
}

static PROFILES: AtomicUsize = AtomicUsize::new(0);

impl Chromium {
    /// Finds Chromium and prints its version; panics (never skips) when there is none, so a
    /// machine without a browser cannot pass the browser tests.
    fn find() -> Self {
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let version = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        match version {
            Ok(out) if out.status.success() => {
                println!("browser: {}", String::from_utf8_lossy(&out.stdout).trim());
                Self { program }
            }
            Ok(out) => panic!(
                "`{program} --version` failed ({}): {}\n{INSTALL}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("cannot run `{program}` ({e}): {INSTALL}"),
        }
    }

    /// Loads `url` in a fresh profile, lets the page run (redirects, scripts, form submissions
    /// and the navigations they cause) until it is idle, and returns the final DOM.
    ///
    /// Each call is one browser with its own temporary profile, so cookies live exactly as long
    /// as one chain of navigations: a case starts from a URL that sets its cookie and
    /// redirects onwards.
    async fn dump_dom(&self, url: &str) -> String {
        let program = self.program.clone();
        let url = url.to_owned();
        // Blocking: the upstream and the page server run on this test's runtime.
        tokio::task::spawn_blocking(move || dump_dom(&program, &url))
            .await
            .unwrap()
    }
}

fn dump_dom(program: &str, url: &str) -> String {
    let profile: PathBuf = std::env::temp_dir().join(format!(
        "portcullis-chromium-{}-{}",
        std::process::id(),
        PROFILES.fetch_add(1, Ordering::SeqCst)
    ));
    let started = Instant::now();
    let mut cmd = Command::new(program);
    cmd.arg("--headless")
        // Chromium's sandbox cannot start as root in a container, where CI runs.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        // Containers often have a tiny /dev/shm, which crashes Chromium's renderers.
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--disable-background-networking")
        .arg("--disable-component-update")
        .arg("--disable-extensions")
        .arg("--disable-sync")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--host-resolver-rules=MAP *.example.test 127.0.0.1")
        // Virtual time stands still while network requests are pending, so this is time for
        // timers only (the pages set none): it ends once the page is idle, not after 5 s.
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a hung browser is killed with its renderer and helpers.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): {INSTALL}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, timed_out) = match rx.recv_timeout(Duration::from_secs(40)) {
        Ok(out) => (out, false),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            (rx.recv().unwrap(), true)
        }
    };
    let out = out.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        !timed_out,
        "Chromium did not finish {url} in 40 s; it printed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("<html"),
        "Chromium failed on {url} ({}); it printed:\n{}\n{}",
        out.status,
        dom,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{url}: {} ms", started.elapsed().as_millis());
    dom
}

/// The text of the first `<pre>` in `dom` whose opening tag starts with `open`, as the page
/// (or Chromium's viewer for a JSON response) wrote it.
fn pre_text(dom: &str, open: &str) -> Option<String> {
    let start = dom.find(open)?;
    let rest = &dom[start..];
    let text = &rest[rest.find('>')? + 1..];
    let text = &text[..text.find("</pre>")?];
    // Text nodes are serialised with these escaped; `&amp;` last, so `&amp;lt;` stays `&lt;`.
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&"),
    )
}

/// The JSON response body the browser ended up displaying.
fn displayed_json(dom: &str) -> Value {
    let text = pre_text(dom, "<pre").unwrap_or_else(|| panic!("no <pre> in the DOM:\n{dom}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The gateway's access log entries (`[logging] format = "json"`) printed since the last call.
fn access_log(gw: &GatewayProcess) -> Vec<Value> {
    gw.output()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["target"] == "portcullis::access")
        .collect()
}

fn logged<'a>(log: &'a [Value], method: &str, path: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|e| e["method"] == method && e["path"] == path)
        .collect()
}

fn received<'a>(seen: &'a [Received], method: &str, path: &str) -> Vec<&'a Received> {
    seen.iter()
        .filter(|r| r.method == method && r.target.split('?').next() == Some(path))
        .collect()
}

/// The page both origins load. It calls the gateway once per case, in sequence, and writes
/// `{case: {"verdict": "readable" | "blocked", "status", ...}}` into `<pre id="verdicts">`.
/// Paths carry the page's host label (`app`, `evil`) so the upstream's log and the access log
/// tell the two runs apart.
fn cors_page(gateway_port: u16) -> String {
    r#"<!doctype html>
<meta charset="utf-8">
<title>cors</title>
<pre id="verdicts">pending</pre>
<script>
const api = "http://api.example.test:GATEWAY_PORT";
const from = location.hostname.split(".")[0];
// Stands in for the app's session cookie. It is scoped to the whole site, so it goes to the
// gateway host too whenever a request includes credentials; a sibling subdomain such as
// evil.example.test can set one just as well.
document.cookie = "sid=s3ss10n; domain=example.test; path=/";
const cases = {
  "simple-get": [`/api/${from}/simple-get`, {}],
  "credentialed-get": [`/api/${from}/credentialed-get`, { credentials: "include" }],
  "preflighted-put": [`/api/${from}/preflighted-put`, {
    method: "PUT",
    headers: { "content-type": "application/json", "x-custom": "1" },
    body: "{}",
  }],
  "credentialed-put": [`/api/${from}/credentialed-put`, {
    method: "PUT",
    credentials: "include",
    headers: { "x-custom": "1" },
  }],
  // A simple request (no preflight) that carries the cookie: the CSRF check decides it.
  "credentialed-post": [`/api/${from}/credentialed-post`, {
    method: "POST",
    credentials: "include",
    headers: { "content-type": "text/plain" },
    body: "transfer",
  }],
  "header-not-allowed": [`/api/${from}/header-not-allowed`, {
    method: "PUT",
    headers: { "x-not-allowed": "1" },
  }],
  "method-not-allowed": [`/api/${from}/method-not-allowed`, { method: "DELETE" }],
  "internal-get": [`/internal/${from}/get`, {}],
};
(async () => {
  const verdicts = {};
  for (const [name, [path, init]] of Object.entries(cases)) {
    try {
      const res = await fetch(api + path, init);
      await res.text();
      verdicts[name] = {
        verdict: "readable",
        status: res.status,
        correlation_id: res.headers.get("x-correlation-id"),
        upstream_header: res.headers.get("x-upstream"),
      };
    } catch (e) {
      verdicts[name] = { verdict: "blocked", error: String(e) };
    }
  }
  document.getElementById("verdicts").textContent = JSON.stringify(verdicts);
})();
</script>
"#
    .replace("GATEWAY_PORT", &gateway_port.to_string())
}

/// Which cases a page may read, from the policy: `/api/*` allows `http://app.example.test:P`
/// with credentials, `GET`/`POST`/`PUT` and the headers `content-type`, `x-custom`;
/// `/internal/*` allows no origin. Everything else the browser must block. (The CSRF check
/// trusts the origins of a route's credentialed CORS policy, so the allowed origin's
/// cookie-carrying POST passes it.)
const CASES: &[(&str, bool)] = &[
    ("simple-get", true),
    ("credentialed-get", true),
    ("preflighted-put", true),
    ("credentialed-put", true),
    ("credentialed-post", true),
    ("header-not-allowed", false),
    ("method-not-allowed", false),
    ("internal-get", false),
];

async fn run_cors_page(
    chromium: &Chromium,
    pages: &PageServer,
    host: &str,
) -> serde_json::Map<String, Value> {
    let url = format!("http://{host}:{}/cors", pages.port());
    let dom = chromium.dump_dom(&url).await;
    let text = pre_text(&dom, "<pre id=\"verdicts\"")
        .unwrap_or_else(|| panic!("no verdicts in the DOM of {url}:\n{dom}"));
    assert_ne!(text, "pending", "the page at {url} never finished:\n{dom}");
    let verdicts: Value = serde_json::from_str(&text).unwrap();
    println!("{host}: {verdicts:#}");
    verdicts.as_object().unwrap().clone()
}

#[tokio::test]
#[ignore = "needs chromium; CI runs ignored tests"]
async fn chromium_reads_only_what_the_cors_policy_allows() {
    let chromium = Chromium::find();
    let upstream = TestUpstream::start().await;
    let pages = PageServer::start().await;
    let gw = GatewayProcess::start(
        common::binary(),
        &policy(&upstream.url(), pages.port(), "enforce"),
        None,
        &[],
    );
    pages.serve("/cors", Page::html(cors_page(gw.addr.port())));
    let _ = gw.output();

    // The allowed origin.
    let app = run_cors_page(&chromium, &pages, "app.example.test").await;
    let log = access_log(&gw);
    let seen = upstream.received();
    for (case, readable) in CASES {
        let verdict = &app[*case];
        if *readable {
            assert_eq!(
                verdict["verdict"], "readable",
                "{case} from the allowed origin: {verdict}"
            );
            assert_eq!(verdict["status"], 200, "{case}: {verdict}");
            // `expose-headers` lists the correlation ID and nothing else.
            assert!(verdict["correlation_id"].is_string(), "{case}: {verdict}");
            assert_eq!(verdict["upstream_header"], Value::Null, "{case}: {verdict}");
        } else {
            assert_eq!(
                verdict["verdict"], "blocked",
                "{case} from the allowed origin: {verdict}"
            );
        }
    }
    let origin = format!("http://app.example.test:{}", pages.port());
    for (method, path, cookie) in [
        ("GET", "/api/app/simple-get", None),
        ("GET", "/api/app/credentialed-get", Some("sid=s3ss10n")),
        ("PUT", "/api/app/preflighted-put", None),
        ("PUT", "/api/app/credentialed-put", Some("sid=s3ss10n")),
        ("POST", "/api/app/credentialed-post", Some("sid=s3ss10n")),
    ] {
        let got = received(&seen, method, path);
        assert_eq!(got.len(), 1, "{method} {path}: {seen:?}");
        assert_eq!(got[0].header("origin"), Some(origin.as_str()), "{path}");
        // Only `credentials: "include"` sends the cookie cross-origin.
        assert_eq!(got[0].header("cookie"), cookie, "{path}");
    }
    assert_eq!(
        received(&seen, "PUT", "/api/app/preflighted-put")[0].header("x-custom"),
        Some("1")
    );
    // Preflights are answered by the gateway, never forwarded.
    assert!(
        !seen.iter().any(|r| r.method == "OPTIONS"),
        "a preflight reached the upstream: {seen:?}"
    );
    let preflight = logged(&log, "OPTIONS", "/api/app/preflighted-put");
    assert_eq!(preflight.len(), 1, "{log:#?}");
    assert_eq!(preflight[0]["status"], 204);
    // Refused preflights: the browser saw a 403 (not a network failure), and the actual
    // request was never sent.
    for path in ["/api/app/header-not-allowed", "/api/app/method-not-allowed"] {
        let preflight = logged(&log, "OPTIONS", path);
        assert_eq!(preflight.len(), 1, "{path}: {log:#?}");
        assert_eq!(preflight[0]["status"], 403, "{path}");
        assert_eq!(preflight[0]["refused"], "cors_preflight_refused", "{path}");
        assert!(
            seen.iter().all(|r| !r.target.starts_with(path)),
            "{path} reached the upstream"
        );
    }
    // A simple GET to a route without CORS is sent (CORS decides what a page may read, not
    // what a server receives) and answered, but the page may not read the answer.
    assert_eq!(received(&seen, "GET", "/internal/app/get").len(), 1);
    assert_eq!(logged(&log, "GET", "/internal/app/get")[0]["status"], 200);

    // Any other origin reads nothing.
    let evil = run_cors_page(&chromium, &pages, "evil.example.test").await;
    let log = access_log(&gw);
    let seen = upstream.received();
    for (case, _) in CASES {
        assert_eq!(
            evil[*case]["verdict"], "blocked",
            "{case} from a refused origin: {}",
            evil[*case]
        );
    }
    let origin = format!("http://evil.example.test:{}", pages.port());
    // Simple GETs are sent and answered; the browser hides the answers.
    for path in ["/api/evil/simple-get", "/api/evil/credentialed-get"] {
        let got = received(&seen, "GET", path);
        assert_eq!(got.len(), 1, "{path}: {seen:?}");
        assert_eq!(got[0].header("origin"), Some(origin.as_str()));
        assert_eq!(logged(&log, "GET", path)[0]["status"], 200, "{path}");
    }
    assert_eq!(
        received(&seen, "GET", "/api/evil/credentialed-get")[0].header("cookie"),
        Some("sid=s3ss10n")
    );
    // The cookie-carrying POST needs no preflight, so only the CSRF check stops it. Chromium
    // sends no `Sec-Fetch-Site` to a plain-HTTP host name; the check falls back to `Origin`.
    let post = logged(&log, "POST", "/api/evil/credentialed-post");
    assert_eq!(post.len(), 1, "{log:#?}");
    assert_eq!(post[0]["status"], 403);
    assert_eq!(post[0]["refused"], "csrf_origin_mismatch");
    assert!(received(&seen, "POST", "/api/evil/credentialed-post").is_empty());
    for path in [
        "/api/evil/preflighted-put",
        "/api/evil/credentialed-put",
        "/api/evil/header-not-allowed",
        "/api/evil/method-not-allowed",
    ] {
        let preflight = logged(&log, "OPTIONS", path);
        assert_eq!(preflight.len(), 1, "{path}: {log:#?}");
        assert_eq!(preflight[0]["status"], 403, "{path}");
        assert!(
            seen.iter().all(|r| !r.target.starts_with(path)),
            "{path} reached the upstream: {seen:?}"
        );
    }
    assert!(received(&seen, "PUT", "/api/evil/preflighted-put").is_empty());
}

/// A page that submits a money-transfer form to `action` as soon as it loads, as an attacker's
/// page would (and as a real app's page does, from its own origin).
fn form_page(action: &str) -> String {
    format!(
        r#"<!doctype html>
<meta charset="utf-8">
<title>transfer</title>
<form id="transfer" method="POST" action="{action}">
  <input name="to" value="mallory">
  <input name="amount" value="1000">
</form>
<script>document.getElementById("transfer").submit();</script>
"#
    )
}

/// The session cookie, as the upstream's login sets it.
///
/// `SameSite=None; Secure` makes Chromium attach it to a cross-site form POST, so the attack
/// really carries the session and only the gateway stands in the way. Chromium accepts
/// `Secure` cookies from `http://127.0.0.1`, a potentially trustworthy origin. The other
/// spellings would test the browser instead of the gateway: `SameSite=Lax` (or `Strict`) is
/// never sent on a cross-site POST, and a cookie without `SameSite` is treated as `Lax` and
/// sent on a top-level cross-site POST only in its first two minutes ("Lax+POST"), a stopgap
/// Chromium may drop; `SameSite=None` without `Secure` is rejected outright.
const SESSION_COOKIE: &str = "sid=s3ss10n; Path=/; HttpOnly; SameSite=None; Secure";

#[tokio::test]
#[ignore = "needs chromium; CI runs ignored tests"]
async fn chromium_cross_site_form_posts_with_the_session_cookie_are_refused() {
    let chromium = Chromium::find();
    // The attacker's site, `http://localhost:P`, and the app behind the gateway, reached as
    // `http://127.0.0.1:G`: different sites, both trustworthy enough for `Sec-Fetch-Site`.
    let attacker = PageServer::start().await;
    let app = PageServer::start().await;
    let enforce = GatewayProcess::start(
        common::binary(),
        &policy(&app.url(), attacker.port(), "enforce"),
        None,
        &[],
    );
    let report_only = GatewayProcess::start(
        common::binary(),
        &policy(&app.url(), attacker.port(), "report-only"),
        None,
        &[],
    );

    // One browser run per case, each starting at the app's login, which sets the session
    // cookie and redirects to the page that posts the form.
    for (mode, gw) in [("enforce", &enforce), ("report-only", &report_only)] {
        let attack = format!("/attack/{mode}");
        app.serve(
            &format!("/login/then-attack-{mode}"),
            Page::redirect(&format!("http://localhost:{}{attack}", attacker.port()))
                .header("set-cookie", SESSION_COOKIE),
        );
        attacker.serve(
            &attack,
            Page::html(form_page(&format!(
                "http://127.0.0.1:{}/api/transfer?via=cross-site-{mode}",
                gw.addr.port()
            ))),
        );
    }
    app.serve(
        "/login/then-transfer",
        Page::redirect("/app/transfer").header("set-cookie", SESSION_COOKIE),
    );
    app.serve(
        "/app/transfer",
        Page::html(form_page("/api/transfer?via=same-origin")),
    );
    app.serve("/api/transfer", Page::json(r#"{"transferred":true}"#));
    let _ = (enforce.output(), report_only.output());
    let attacker_origin = format!("http://localhost:{}", attacker.port());
    let transfers = |via: &str| -> Vec<Received> {
        app.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.target == format!("/api/transfer?via={via}"))
            .collect()
    };

    // The attack, enforced: refused by the gateway, never seen by the app.
    let dom = chromium
        .dump_dom(&format!(
            "http://127.0.0.1:{}/login/then-attack-enforce",
            enforce.addr.port()
        ))
        .await;
    let body = displayed_json(&dom);
    assert_eq!(body["error"]["code"], "csrf_origin_mismatch", "{body}");
    // The CSRF check lets every cookie-less request through, so this refusal alone shows the
    // browser sent the cookie; the detail (shown in development) says what else it sent.
    assert_eq!(
        body["error"]["detail"],
        format!("Sec-Fetch-Site: cross-site, Origin {attacker_origin} not trusted"),
        "{body}"
    );
    let log = access_log(&enforce);
    let refused = logged(&log, "POST", "/api/transfer");
    assert_eq!(refused.len(), 1, "{log:#?}");
    assert_eq!(refused[0]["status"], 403);
    assert_eq!(refused[0]["refused"], "csrf_origin_mismatch");
    assert!(transfers("cross-site-enforce").is_empty());
    assert!(
        attacker
            .received()
            .iter()
            .any(|r| r.target == "/attack/enforce"),
        "the attack page was never loaded"
    );

    // The same attack, report-only: it goes through, so the app shows what Chromium sent.
    let dom = chromium
        .dump_dom(&format!(
            "http://127.0.0.1:{}/login/then-attack-report-only",
            report_only.addr.port()
        ))
        .await;
    assert_eq!(displayed_json(&dom), json!({"transferred": true}));
    let sent = transfers("cross-site-report-only");
    assert_eq!(sent.len(), 1, "{:?}", app.received());
    assert_eq!(sent[0].header("cookie"), Some("sid=s3ss10n"));
    assert_eq!(sent[0].header("sec-fetch-site"), Some("cross-site"));
    assert_eq!(sent[0].header("origin"), Some(attacker_origin.as_str()));
    assert!(
        report_only
            .output()
            .iter()
            .any(|l| l.contains("portcullis::csrf") && l.contains("report-only")),
        "report-only mode logs the violation"
    );

    // The app's own page, served through the gateway, posting to itself: it passes, with the
    // cookie.
    let dom = chromium
        .dump_dom(&format!(
            "http://127.0.0.1:{}/login/then-transfer",
            enforce.addr.port()
        ))
        .await;
    assert_eq!(displayed_json(&dom), json!({"transferred": true}));
    let sent = transfers("same-origin");
    assert_eq!(sent.len(), 1, "{:?}", app.received());
    assert_eq!(sent[0].header("cookie"), Some("sid=s3ss10n"));
    assert_eq!(sent[0].header("sec-fetch-site"), Some("same-origin"));
    let log = access_log(&enforce);
    assert_eq!(logged(&log, "POST", "/api/transfer")[0]["status"], 200);
}
