//! What `portcullis check` says about the policy, for the reviewer: a setting the policy keeps
//! although it weakens or contradicts the posture is a fact of the page too.

use portcullis::policy::Diagnostics;

use crate::security_page::model::{Line, Section, code, text};

pub fn section(warnings: &Diagnostics) -> Section {
    let mut s = Section::new("check-warnings", "Warnings from portcullis check");
    if warnings.is_empty() {
        s.paragraph(vec![
            text("None: "),
            code("portcullis check"),
            text(" finds nothing to warn about in this environment."),
        ]);
        return s;
    }
    s.paragraph(vec![
        text("The policy loads, and the gateway enforces it as written; "),
        code("portcullis check"),
        text(" still warns about:"),
    ]);
    let items: Vec<Line> = warnings
        .iter()
        .map(|w| {
            let mut line = vec![code(w.path.to_string())];
            if let Some((l, _)) = w.line_col {
                line.push(text(format!(" (line {l})")));
            }
            line.push(text(format!(": {}", w.message)));
            line
        })
        .collect();
    s.list(items);
    s
}
