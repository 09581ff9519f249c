//! Key paths (`route[2].cache-control`) and how they are found again in the TOML source.
//!
//! Validation works on the typed raw mirror, which has lost every position. Rather than threading
//! spans through each field, a diagnostic names the *key path* it is about, and [`locate`] walks the
//! span-carrying parse of the same source to find that key's line and column. One mechanism serves
//! serde's errors, unknown keys and every semantic check alike.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to a key, rendered as `route[2].headers.set.x-frame-options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &KeyPath) -> Self {
        let mut next = self.clone();
        next.0.extend(rest.0.iter().cloned());
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Builds a key path from the path `serde_ignored` reports for an unknown key.
    pub(crate) fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
            match path {
                serde_ignored::Path::Root => {}
                serde_ignored::Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Segment::Index(*index));
                }
                serde_ignored::Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Segment::Key(key.clone()));
                }
                serde_ignored::Path::Some { parent }
                | serde_ignored::Path::NewtypeStruct { parent }
                | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
            }
        }
        let mut segments = Vec::new();
        walk(path, &mut segments);
        Self(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The byte range of the key (or array element) that `path` names, or of its nearest ancestor
/// that exists in the document.
pub(crate) fn locate(root: &DeTable<'_>, path: &KeyPath) -> Option<Range<usize>> {
    let mut found = None;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for segment in &path.0 {
        let entry = match (segment, table, array) {
            (Segment::Key(key), Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                .map(|(k, v)| (k.span(), v)),
            (Segment::Index(i), _, Some(items)) => items.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        // A key that is not there (a missing required key) points at its nearest ancestor.
        let Some((span, value)) = entry else { break };
        found = Some(span);
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    found
}

/// The deepest key whose value's span contains `span`: turns a serde error position back into
/// the key path it belongs to. Table spans only cover their `[header]`, so every table is
/// searched rather than only the ones whose span contains the position.
pub(crate) fn path_at(root: &DeTable<'_>, span: &Range<usize>) -> KeyPath {
    fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end
    }
    fn walk_value(
        value: &toml::Spanned<DeValue<'_>>,
        span: &Range<usize>,
        path: KeyPath,
    ) -> Option<KeyPath> {
        let deeper = match value.get_ref() {
            DeValue::Table(t) => walk_table(t, span, &path),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk_value(item, span, path.index(i))),
            _ => None,
        };
        deeper.or_else(|| contains(&value.span(), span).then_some(path))
    }
    fn walk_table(table: &DeTable<'_>, span: &Range<usize>, path: &KeyPath) -> Option<KeyPath> {
        table.iter().find_map(|(k, v)| {
            let here = path.key(k.get_ref().as_ref());
            walk_value(v, span, here.clone()).or_else(|| contains(&k.span(), span).then_some(here))
        })
    }
    walk_table(root, span, &KeyPath::root()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_indices_and_quoted_keys() {
        let path = KeyPath::root()
            .key("route")
            .index(2)
            .key("headers")
            .key("x.weird");
        assert_eq!(path.to_string(), "route[2].headers.\"x.weird\"");
    }

    #[test]
    fn locates_keys_inside_arrays_of_tables() {
        let src = "[[route]]\nname = \"a\"\n\n[[route]]\nname = \"b\"\ncache-control = 5\n";
        let doc = toml::de::DeTable::parse(src).unwrap();
        let span = locate(
            doc.get_ref(),
            &KeyPath::root().key("route").index(1).key("cache-control"),
        )
        .unwrap();
        assert_eq!(&src[span], "cache-control");
    }

    #[test]
    fn finds_the_path_of_a_value_span() {
        let src = "[server]\nlisten = 5\n";
        let doc = toml::de::DeTable::parse(src).unwrap();
        let at = src.find('5').unwrap();
        assert_eq!(
            path_at(doc.get_ref(), &(at..at + 1)).to_string(),
            "server.listen"
        );
    }
}

#[cfg(test)]
mod locate_tests {
    use super::*;

    #[test]
    fn missing_keys_point_at_their_nearest_ancestor() {
        let src = "[[route]]\nname = \"a\"\n\n[[route]]\npaths = [\"/b\"]\n";
        let doc = toml::de::DeTable::parse(src).unwrap();
        let span = locate(
            doc.get_ref(),
            &KeyPath::root().key("route").index(1).key("name"),
        );
        assert!(span.is_some());
        let span = span.unwrap();
        assert!(
            src[span.start..].starts_with("[[route]]\npaths") || span.start >= 11,
            "{span:?}"
        );
    }
}
