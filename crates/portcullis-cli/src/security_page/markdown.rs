//! GitHub-flavoured Markdown for the page model.
//!
//! Every string from the model is escaped: ASCII punctuation that could start markup is
//! backslash-escaped, line breaks become `<br>` (so a value can never start a new block or
//! table row), and a table cell's `|` is escaped so it cannot add a column. Code spans are used
//! only where their content cannot break out: never with a line break, and in table cells never
//! with `|` or `\` (GFM splits cells before it parses code spans); such values fall back to
//! escaped text.

use std::fmt::Write as _;

use super::model::{Block, Inline, Page, Table};

/// Where inline text is written: a table cell restricts what a code span may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Flow,
    Cell,
}

pub fn render(page: &Page) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape_text(&page.title));
    for line in &page.about {
        let _ = writeln!(out, "- {}", inlines(line, Context::Flow, true));
    }
    out.push('\n');
    out.push_str("Contents: ");
    let links: Vec<String> = page
        .sections
        .iter()
        .map(|s| format!("[{}](#{})", escape_text(s.heading), s.id))
        .collect();
    out.push_str(&links.join(" · "));
    out.push_str("\n\n");
    for section in &page.sections {
        // An explicit anchor: GitHub's generated ones depend on the heading text.
        let _ = writeln!(
            out,
            "<a id=\"{}\"></a>\n\n## {}\n",
            section.id,
            escape_text(section.heading)
        );
        for block in &section.blocks {
            block_to(&mut out, block);
            out.push('\n');
        }
    }
    // One trailing newline, as editors and `git diff` expect.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn block_to(out: &mut String, block: &Block) {
    match block {
        Block::Paragraph(line) => {
            let _ = writeln!(out, "{}", inlines(line, Context::Flow, true));
        }
        Block::Subheading(line) => {
            let _ = writeln!(out, "### {}", inlines(line, Context::Flow, false));
        }
        Block::List(items) => {
            for item in items {
                let _ = writeln!(out, "- {}", inlines(item, Context::Flow, true));
            }
        }
        Block::Table(table) => table_to(out, table),
        Block::Preformatted(body) => {
            let fence = "`".repeat(longest_run(body, '`').max(2) + 1);
            let _ = writeln!(out, "{fence}text\n{}\n{fence}", body.trim_end_matches('\n'));
        }
    }
}

fn table_to(out: &mut String, table: &Table) {
    let head: Vec<String> = table.columns.iter().map(|c| escape_text(c)).collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(table.columns.len()));
    for row in &table.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| inlines(cell, Context::Cell, false))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn inlines(line: &[Inline], context: Context, line_start: bool) -> String {
    let mut out = String::new();
    for (i, inline) in line.iter().enumerate() {
        match inline {
            Inline::Text(t) if i == 0 && line_start => out.push_str(&escape_line_start(t)),
            Inline::Text(t) => out.push_str(&escape_text(t)),
            Inline::Strong(t) => {
                let _ = write!(out, "**{}**", escape_text(t));
            }
            Inline::Code(c) => out.push_str(&code_span(c, context)),
        }
    }
    out
}

/// Escapes prose: every character that could open markup (emphasis, links, HTML, entities,
/// code, strikethrough, math, table cells) is backslash-escaped; line breaks become `<br>`;
/// other control characters are dropped.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '$' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// [`escape_text`] for text that starts a line, where `#`, `>`, `-`, `+`, `=` or `1.` would
/// open a heading, quote, list or rule.
fn escape_line_start(text: &str) -> String {
    let escaped = escape_text(text.trim_start());
    let digits = escaped.bytes().take_while(u8::is_ascii_digit).count();
    match escaped.as_bytes().first() {
        Some(b'#' | b'-' | b'+' | b'=') => format!("\\{escaped}"),
        Some(b'0'..=b'9') if matches!(escaped.as_bytes().get(digits), Some(b'.' | b')')) => {
            format!("{}\\{}", &escaped[..digits], &escaped[digits..])
        }
        _ => escaped,
    }
}

/// A code span that holds `content` literally, or escaped text where a code span could not.
fn code_span(content: &str, context: Context) -> String {
    let breaks_out = content.chars().any(|c| c.is_control())
        || (context == Context::Cell && content.contains(['|', '\\']))
        || content.trim().is_empty();
    if breaks_out {
        return escape_text(content);
    }
    let fence = "`".repeat(longest_run(content, '`') + 1);
    // A space keeps a backtick at either end from merging with the fence; CommonMark strips
    // one space on each side again.
    let pad = if content.starts_with('`') || content.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{content}{pad}{fence}")
}

fn longest_run(text: &str, ch: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c == ch {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security_page::model::{Section, code, text};

    #[test]
    fn prose_cannot_open_markup() {
        assert_eq!(
            escape_text("<script>alert(1)</script> *x* [a](b) a|b `c` &amp; $x$"),
            "\\<script\\>alert(1)\\</script\\> \\*x\\* \\[a\\](b) a\\|b \\`c\\` \\&amp; \\$x\\$"
        );
    }

    #[test]
    fn line_breaks_cannot_start_a_block_or_a_row() {
        assert_eq!(escape_text("a\n# b\r\n| c |"), "a<br># b<br>\\| c \\|");
        assert_eq!(escape_line_start("# heading"), "\\# heading");
        assert_eq!(escape_line_start("- item"), "\\- item");
        assert_eq!(escape_line_start("12. item"), "12\\. item");
        assert_eq!(escape_line_start("    indented"), "indented");
        assert_eq!(escape_line_start("2026 was"), "2026 was");
    }

    #[test]
    fn code_spans_hold_backticks_and_fall_back_in_cells() {
        assert_eq!(code_span("a`b", Context::Flow), "``a`b``");
        assert_eq!(code_span("`a", Context::Flow), "`` `a ``");
        assert_eq!(code_span("a|b", Context::Flow), "`a|b`");
        assert_eq!(code_span("a|b", Context::Cell), "a\\|b");
        assert_eq!(code_span("a\\|b", Context::Cell), "a\\\\\\|b");
        assert_eq!(code_span("a\nb", Context::Flow), "a<br>b");
    }

    #[test]
    fn a_hostile_cell_stays_one_cell() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec![vec![text("x | y\n| z | w |")], vec![code("v|\\|")]]);
        let mut section = Section::new("s", "S");
        section.table(table);
        let page = Page {
            title: "t".into(),
            about: vec![],
            sections: vec![section],
        };
        let md = render(&page);
        let row = md.lines().find(|l| l.starts_with("| x")).expect("the row");
        // Unescaped pipes: the two outer ones and the one separating the cells.
        let bare = row
            .char_indices()
            .filter(|&(i, c)| c == '|' && !row[..i].ends_with('\\'))
            .count();
        assert_eq!(bare, 3, "{row}");
        assert!(!md.contains("\n| z"), "{md}");
    }
}
