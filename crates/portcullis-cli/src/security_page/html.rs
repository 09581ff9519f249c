//! One self-contained HTML page for the page model: inline CSS only, no scripts, no external
//! resources (a Content-Security-Policy meta tag says so to the browser as well), semantic
//! tables with `<th scope>`, and a print stylesheet.
//!
//! Every string from the model is escaped (`&<>"'`); line breaks become `<br>`.

use std::fmt::Write as _;

use super::model::{Block, Inline, Page, Table};

const STYLE: &str = "\
:root{color-scheme:light dark;--line:#c8c8c8;--muted:#666;--code:rgba(127,127,127,.14)}
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:72rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.8rem;margin-bottom:.5rem}
h2{font-size:1.35rem;margin-top:2.2rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
h3{font-size:1.1rem;margin-top:1.4rem}
.about{color:var(--muted);padding-left:1.2rem}
nav ul{display:flex;flex-wrap:wrap;gap:.3rem 1rem;list-style:none;padding:0}
table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:.92rem}
th,td{border:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
thead th{background:var(--code)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
code{background:var(--code);padding:.05rem .25rem;border-radius:3px}
pre{background:var(--code);padding:.7rem;overflow-x:auto;white-space:pre-wrap}
@media print{body{max-width:none;padding:0;font-size:11pt}nav{display:none}h2{break-after:avoid}tr,pre{break-inside:avoid}a{color:inherit;text-decoration:none}}
";

pub fn render(page: &Page) -> String {
    let mut out = String::new();
    let title = escape(&page.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
    );
    out.push_str("<ul class=\"about\">\n");
    for line in &page.about {
        let _ = writeln!(out, "<li>{}</li>", inlines(line));
    }
    out.push_str("</ul>\n<nav aria-label=\"Contents\">\n<ul>\n");
    for section in &page.sections {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(section.id),
            escape(section.heading)
        );
    }
    out.push_str("</ul>\n</nav>\n");
    for section in &page.sections {
        let _ = writeln!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>",
            escape(section.id),
            escape(section.heading)
        );
        for block in &section.blocks {
            block_to(&mut out, block);
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn block_to(out: &mut String, block: &Block) {
    match block {
        Block::Paragraph(line) => {
            let _ = writeln!(out, "<p>{}</p>", inlines(line));
        }
        Block::Subheading(line) => {
            let _ = writeln!(out, "<h3>{}</h3>", inlines(line));
        }
        Block::List(items) => {
            out.push_str("<ul>\n");
            for item in items {
                let _ = writeln!(out, "<li>{}</li>", inlines(item));
            }
            out.push_str("</ul>\n");
        }
        Block::Table(table) => table_to(out, table),
        Block::Preformatted(body) => {
            let _ = writeln!(
                out,
                "<pre><code>{}</code></pre>",
                escape_preformatted(body.trim_end_matches('\n'))
            );
        }
    }
}

fn table_to(out: &mut String, table: &Table) {
    out.push_str("<table>\n<thead>\n<tr>");
    for column in &table.columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(column));
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<th scope=\"row\">{}</th>", inlines(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", inlines(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn inlines(line: &[Inline]) -> String {
    let mut out = String::new();
    for inline in line {
        match inline {
            Inline::Text(t) => out.push_str(&escape(t)),
            Inline::Code(c) => {
                let _ = write!(out, "<code>{}</code>", escape(c));
            }
            Inline::Strong(t) => {
                let _ = write!(out, "<strong>{}</strong>", escape(t));
            }
        }
    }
    out
}

/// Escapes text for element content and attribute values; line breaks become `<br>`, other
/// control characters are dropped.
pub fn escape(text: &str) -> String {
    escape_with(text, "<br>")
}

/// [`escape`] inside `<pre>`, where line breaks stay line breaks.
fn escape_preformatted(text: &str) -> String {
    escape_with(text, "\n")
}

fn escape_with(text: &str, line_break: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str(line_break);
            }
            '\n' => out.push_str(line_break),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security_page::model::{Section, code, text};

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(
            escape("<img src=x onerror='a()'> & \"q\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("a\nb\r\nc\u{0}"), "a<br>b<br>c");
        assert_eq!(escape_preformatted("a\n<b>"), "a\n&lt;b&gt;");
    }

    #[test]
    fn a_hostile_page_has_no_markup_of_its_own() {
        let mut section = Section::new("s", "S");
        section.paragraph(vec![text("</p><script>alert(1)</script>")]);
        let mut table = Table::new(&["A"]);
        table.row(vec![vec![code("\"><script>x</script>")]]);
        section.table(table);
        section.preformatted("</code></pre><script>");
        let page = Page {
            title: "</title><script>".into(),
            about: vec![],
            sections: vec![section],
        };
        let html = render(&page);
        assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
        assert!(html.contains("&lt;/title&gt;&lt;script&gt;"));
    }

    #[test]
    fn no_external_resources() {
        let html = render(&Page {
            title: "t".into(),
            about: vec![],
            sections: vec![],
        });
        for banned in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!html.contains(banned), "{banned}");
        }
        assert!(html.contains("@media print"));
    }
}
