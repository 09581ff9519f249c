//! The real `portcullis` binary, started on an ephemeral loopback port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A running gateway process; killed when dropped.
#[derive(Debug)]
pub struct GatewayProcess {
    pub addr: SocketAddr,
    /// The admin API's address, when the policy has `[admin]` (`serve` logs it before the
    /// gateway's own address).
    pub admin_addr: Option<SocketAddr>,
    child: Child,
    policy_file: PathBuf,
    /// Lines printed before it was listening, handed out by the first [`Self::output`].
    startup: std::cell::RefCell<Vec<String>>,
    /// Every line the process printed (stdout and stderr), as it arrives.
    lines: mpsc::Receiver<String>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Writes `text` to a fresh file in the temp directory and returns its path.
pub fn write_temp(name: &str, text: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let path =
        std::env::temp_dir().join(format!("portcullis-test-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

impl GatewayProcess {
    /// Runs `binary serve --config <policy> --listen 127.0.0.1:0 [--upstream URL] [extra...]`
    /// and waits until it is listening.
    pub fn start(binary: &Path, policy: &str, upstream: Option<&str>, extra: &[&str]) -> Self {
        Self::try_start(binary, policy, upstream, extra, &[]).unwrap_or_else(|seen| {
            panic!(
                "the gateway did not start; it printed:\n{}",
                seen.join("\n")
            )
        })
    }

    /// Like [`Self::start`], with `env` added to the process environment (`RUST_LOG` is `info`
    /// unless `env` sets it); a gateway that exits (or is not listening within 30 s) is an
    /// `Err` with every line it printed.
    pub fn try_start(
        binary: &Path,
        policy: &str,
        upstream: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, Vec<String>> {
        let policy_file = write_temp("policy.toml", policy);
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg("--config")
            .arg(&policy_file)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if let Some(u) = upstream {
            cmd.arg("--upstream").arg(u);
        }
        // `RUST_LOG=info` unless `env` says otherwise.
        cmd.args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the reader threads hold senders now, so a gateway that exits (a policy error)
        // ends the wait at once instead of after the timeout.
        drop(tx);
        let mut seen = Vec::new();
        let mut admin_addr = None;
        let addr = loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(addr) = listening_addr(&line) {
                        break addr;
                    }
                    admin_addr = admin_addr.or_else(|| addr_after(&line, "admin API on http://"));
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_file(&policy_file);
                    return Err(seen);
                }
            }
        };
        Ok(Self {
            addr,
            admin_addr,
            child,
            policy_file,
            startup: std::cell::RefCell::new(seen),
            lines,
        })
    }

    /// Lines printed since the last call (or since start-up, the start-up lines included).
    pub fn output(&self) -> Vec<String> {
        let mut out = std::mem::take(&mut *self.startup.borrow_mut());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            out.push(line);
        }
        out
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    addr_after(line, "listening on http://")
}

/// The socket address that follows `marker` in a log line (text or JSON).
fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.policy_file);
    }
}

/// The first of `lines` (a gateway's [`GatewayProcess::output`] in JSON log format) that
/// contains `needle`, as printed and parsed; panics, listing every line, when none does or it
/// is not JSON.
pub fn json_line(lines: &[String], needle: &str) -> (String, serde_json::Value) {
    let line = lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line containing {needle:?} in {lines:?}"));
    let json = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    (line.clone(), json)
}
