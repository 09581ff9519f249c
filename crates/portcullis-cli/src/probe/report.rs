//! The probe's result as a table for people or as JSON for pipelines.
//!
//! The JSON field names are stable (documented in docs/probe.md):
//! `{ target, environment, findings: [{check, route, request, expected, got}],
//!    not_probed: [{route, what, reason}],
//!    summary: {drift, findings, requests_sent, request_limit, by_check: {NAME: count}} }`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::finding::Finding;
use super::plan::{MAX_REQUESTS, NotProbed};

/// Everything one probe found.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub environment: String,
    pub findings: Vec<Finding>,
    pub not_probed: Vec<NotProbed>,
    pub requests_sent: usize,
}

/// Cells wider than this do not widen their column (long header values would push the table
/// off every screen); they just run over.
const MAX_COLUMN: usize = 48;

impl Report {
    pub fn drift(&self) -> bool {
        !self.findings.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let mut by_check: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.findings {
            *by_check.entry(f.check.as_str()).or_default() += 1;
        }
        json!({
            "target": self.target,
            "environment": self.environment,
            "findings": self.findings.iter().map(|f| json!({
                "check": f.check.as_str(),
                "route": f.route,
                "request": f.request,
                "expected": f.expected,
                "got": f.got,
            })).collect::<Vec<_>>(),
            "not_probed": self.not_probed.iter().map(|n| json!({
                "route": n.route,
                "what": n.what,
                "reason": n.reason,
            })).collect::<Vec<_>>(),
            "summary": {
                "drift": self.drift(),
                "findings": self.findings.len(),
                "requests_sent": self.requests_sent,
                "request_limit": MAX_REQUESTS,
                "by_check": by_check,
            },
        })
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if !self.findings.is_empty() {
            let header = ["check", "route", "request", "expected", "got"];
            let rows: Vec<[&str; 5]> = self
                .findings
                .iter()
                .map(|f| {
                    [
                        f.check.as_str(),
                        f.route.as_str(),
                        f.request.as_str(),
                        f.expected.as_str(),
                        f.got.as_str(),
                    ]
                })
                .collect();
            let mut widths = header.map(str::len);
            for row in &rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count().min(MAX_COLUMN));
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        let _ = write!(line, "{cell:<width$} | ");
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out.push('\n');
        }
        for n in &self.not_probed {
            let _ = writeln!(
                out,
                "not probed: {} on route {}: {}",
                n.what, n.route, n.reason
            );
        }
        let _ = writeln!(
            out,
            "{}: {} finding(s) in {} request(s) ({} environment)",
            self.target,
            self.findings.len(),
            self.requests_sent,
            self.environment
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::finding::Check;

    fn report(findings: Vec<Finding>) -> Report {
        Report {
            target: "http://127.0.0.1:8080".into(),
            environment: "production".into(),
            findings,
            not_probed: vec![NotProbed {
                route: "ws".into(),
                what: "route".into(),
                reason: "shadowed".into(),
            }],
            requests_sent: 7,
        }
    }

    fn finding(check: Check) -> Finding {
        Finding {
            check,
            route: "status".into(),
            request: "GET /v1/status".into(),
            expected: "x-content-type-options: nosniff".into(),
            got: "absent".into(),
        }
    }

    #[test]
    fn json_has_stable_fields_and_counts() {
        let r = report(vec![
            finding(Check::HeaderMissing),
            finding(Check::HeaderMissing),
            finding(Check::ServerLeak),
        ]);
        let v = r.to_json();
        assert_eq!(v["findings"][0]["check"], "header-missing");
        assert_eq!(v["findings"][0]["route"], "status");
        assert_eq!(v["findings"][0]["got"], "absent");
        assert_eq!(v["not_probed"][0]["route"], "ws");
        assert_eq!(v["summary"]["drift"], true);
        assert_eq!(v["summary"]["findings"], 3);
        assert_eq!(v["summary"]["requests_sent"], 7);
        assert_eq!(v["summary"]["by_check"]["header-missing"], 2);
        assert_eq!(v["summary"]["by_check"]["server-leak"], 1);
    }

    #[test]
    fn table_lines_up_and_ends_with_a_summary() {
        let text = report(vec![finding(Check::HeaderMissing)]).to_table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "check          | route  | request        | expected                        | got"
        );
        assert!(lines[1].starts_with("header-missing | status | GET /v1/status |"));
        assert!(text.contains("not probed: route on route ws: shadowed"));
        assert!(text.ends_with("1 finding(s) in 7 request(s) (production environment)\n"));
        let clean = report(Vec::new());
        assert!(!clean.drift());
        assert!(!clean.to_table().contains("check"));
    }
}
