//! Removing a fixed set of header names from a map, at the cost of what is present.
//!
//! Layers strip headers on every request and response (hop-by-hop headers, identity headers a
//! client must not choose, signature headers, the headers a posture removes), and most messages
//! carry none or few of them. `HeaderMap::remove` hashes the name and probes the table even when
//! the header is absent; one pass over the message's own names, compared as `HeaderName`s (an
//! enum comparison for the standard ones, a short byte comparison for the others), finds which
//! are present, and only those are removed.

use std::borrow::Borrow;

use http::{HeaderMap, HeaderName};

/// Removes every value of each of `names` (`HeaderName`s or references to them) from `headers`.
pub fn remove_all<N: Borrow<HeaderName>>(headers: &mut HeaderMap, names: &[N]) {
    // Which of `names` are present, as bits; a longer list is rare enough to take the slow path.
    if names.len() > 64 {
        for name in names {
            headers.remove(name.borrow());
        }
        return;
    }
    let mut present: u64 = 0;
    for name in headers.keys() {
        if let Some(i) = names.iter().position(|n| n.borrow() == name) {
            present |= 1 << i;
        }
    }
    while present != 0 {
        let i = present.trailing_zeros() as usize;
        present &= present - 1;
        headers.remove(names[i].borrow());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, header};

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn removes_every_value_of_each_name_present_and_nothing_else() {
        let mut m = map(&[
            ("server", "x"),
            ("x-tenant-id", "a"),
            ("x-tenant-id", "b"),
            ("content-type", "application/json"),
            ("x-keep", "1"),
        ]);
        let names = [
            header::SERVER,
            HeaderName::from_static("x-tenant-id"),
            HeaderName::from_static("x-absent"),
        ];
        remove_all(&mut m, &names.iter().collect::<Vec<_>>());
        assert!(!m.contains_key(header::SERVER));
        assert!(!m.contains_key("x-tenant-id"));
        assert_eq!(m.len(), 2);
        assert_eq!(m["content-type"], "application/json");
        assert_eq!(m["x-keep"], "1");
    }

    #[test]
    fn an_empty_map_or_list_is_left_alone() {
        let mut m = HeaderMap::new();
        remove_all(&mut m, &[header::SERVER]);
        assert!(m.is_empty());
        let mut m = map(&[("server", "x")]);
        remove_all::<HeaderName>(&mut m, &[]);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn long_lists_take_the_plain_path() {
        let names: Vec<HeaderName> = (0..70)
            .map(|i| HeaderName::try_from(format!("x-h{i}")).unwrap())
            .collect();
        let mut m = HeaderMap::new();
        m.insert(names[69].clone(), HeaderValue::from_static("v"));
        m.insert(names[3].clone(), HeaderValue::from_static("v"));
        m.insert(header::SERVER, HeaderValue::from_static("v"));
        remove_all(&mut m, &names);
        assert_eq!(m.len(), 1);
        assert!(m.contains_key(header::SERVER));
    }
}
