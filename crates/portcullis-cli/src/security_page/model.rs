//! The page model: plain data (sections of headings, paragraphs, lists, tables), built once from
//! a compiled policy and rendered by both [`super::markdown`] and [`super::html`], so the two
//! formats can never say different things.
//!
//! Every string in it is *text*, never markup: the renderers escape all of it, because most of
//! it comes from a policy file.

/// A piece of running text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    /// Prose.
    Text(String),
    /// A literal value: a header name or value, a path, an origin, a key.
    Code(String),
    /// Emphasised prose (a label such as "Why:").
    Strong(String),
}

/// A run of inlines: one paragraph, list item, table cell or heading.
pub type Line = Vec<Inline>;

pub fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}

pub fn code(s: impl Into<String>) -> Inline {
    Inline::Code(s.into())
}

pub fn strong(s: impl Into<String>) -> Inline {
    Inline::Strong(s.into())
}

/// `items` as code spans separated by ", "; `empty` when there are none.
pub fn code_list<I, S>(items: I, empty: &str) -> Line
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut line = Vec::new();
    for item in items {
        if !line.is_empty() {
            line.push(text(", "));
        }
        line.push(code(item));
    }
    if line.is_empty() {
        line.push(text(empty));
    }
    line
}

/// A table: fixed column titles, rows of cells. The first column names the row (rendered as a
/// row header in HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Line>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; a row shorter than the columns is padded with empty cells so both renderers
    /// always emit rectangular tables.
    pub fn row(&mut self, mut cells: Vec<Line>) {
        cells.resize(self.columns.len(), Vec::new());
        self.rows.push(cells);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Paragraph(Line),
    /// A heading one level below the section's.
    Subheading(Line),
    List(Vec<Line>),
    Table(Table),
    /// Preformatted text (a JSON shape, a security.txt body).
    Preformatted(String),
}

/// One titled part of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// A fixed anchor (`response-headers`): stable links into the page.
    pub id: &'static str,
    pub heading: &'static str,
    pub blocks: Vec<Block>,
}

impl Section {
    pub fn new(id: &'static str, heading: &'static str) -> Self {
        Self {
            id,
            heading,
            blocks: Vec::new(),
        }
    }

    pub fn paragraph(&mut self, line: Line) {
        self.blocks.push(Block::Paragraph(line));
    }

    pub fn subheading(&mut self, line: Line) {
        self.blocks.push(Block::Subheading(line));
    }

    pub fn list(&mut self, items: Vec<Line>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn table(&mut self, table: Table) {
        self.blocks.push(Block::Table(table));
    }

    pub fn preformatted(&mut self, body: impl Into<String>) {
        self.blocks.push(Block::Preformatted(body.into()));
    }
}

/// The whole page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub title: String,
    /// Facts about the page itself: file, environment, digest, generation time.
    pub about: Vec<Line>,
    pub sections: Vec<Section>,
}
