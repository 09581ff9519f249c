//! The floor proxy: the bare proxy plus only the fixed header work a policy requires, written
//! as one function with everything precomputed. It answers "how fast could a gateway with this
//! posture be on this plumbing?", where the bare proxy answers "how fast is the plumbing?".
//!
//! Per request, and nothing more:
//! - the correlation ID: the first of the accepted headers present decides (its value when it
//!   is 1 to `id-max-length` characters of the gateway's charset, else a new UUID v4); the
//!   others are removed, the ID is sent upstream and echoed;
//! - the API key (`Authorization: Bearer`): split, base64url-decoded and SHA-256-hashed as the
//!   key store does, its ID compared with the one valid key's and its hash in constant time (a
//!   real store first finds the key among many, which costs more); a missing or wrong key is a
//!   bare `401`; the identity headers a client sent are removed and the key's own
//!   (precomputed) are set;
//! - `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`, precomputed per connection;
//! - the response posture: the removed headers removed, the global headers, the route's
//!   `Cache-Control` and `Vary: origin` (routes with CORS) set; the route is matched on the raw
//!   path, exactly or by prefix, as the nginx configuration `load.py` generates does.
//!
//! What the gateway does and this does not: path normalisation, the wire-framing scan and
//! framing checks, the client-IP rules, CORS decisions, rate limits, the key's last-use write
//! and tenant checks, error bodies, the access log and its span. So the floor is a lower bound
//! on any implementation of the posture over this plumbing, fused or not.
//!
//! `load.py` writes the configuration from the policy, one directive per line:
//!
//! ```text
//! header NAME VALUE           # sent on every response
//! remove NAME                 # removed from every response
//! id NAME MAX_LENGTH          # the correlation ID header
//! accept NAME                 # an accepted correlation ID header, in order
//! exact PATH VARY CACHE       # a route: VARY is `vary` (CORS) or `-`
//! prefix PREFIX VARY CACHE
//! default VARY CACHE          # the default route, last
//! identity NAME VALUE         # set upstream for the key (the key ID's header: `identity-key-id NAME`)
//! identity-key-id NAME
//! ```
//!
//! The one valid API key comes from the environment (`FLOOR_API_KEY`), never the command line;
//! without it no key is checked and no identity header set (the policy without `[auth]`).
//!
//! ```text
//! FLOOR_API_KEY=pcl_… floor-proxy --listen 127.0.0.1:8082 --upstream 127.0.0.1:3000 --config floor.conf
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use portcullis::layers::CorrelationId;
use portcullis::layers::remove_headers::remove_all;
use portcullis_bench::proxy::{self, Work};
use portcullis_bench::{ArgError, flags, loopback_addr};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The gateway's allocator (`portcullis-cli`'s main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    portcullis_bench::exit_status("floor-proxy", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut listen, mut upstream, mut config) = (None, None, None);
    for (name, value) in flags(&["listen", "upstream", "config"])? {
        match name.as_str() {
            "listen" => listen = Some(loopback_addr(&value)?),
            "upstream" => upstream = Some(loopback_addr(&value)?),
            _ => config = Some(value),
        }
    }
    let listen = listen.ok_or_else(|| ArgError("--listen ADDR is required".into()))?;
    let upstream = upstream.ok_or_else(|| ArgError("--upstream ADDR is required".into()))?;
    let config = config.ok_or_else(|| ArgError("--config FILE is required".into()))?;
    let text = std::fs::read_to_string(&config).map_err(|e| ArgError(format!("{config}: {e}")))?;
    let key = std::env::var("FLOOR_API_KEY").ok();
    let floor =
        Floor::parse(&text, key.as_deref()).map_err(|e| ArgError(format!("{config}: {e}")))?;
    // Lives as long as the process; a `'static` reference costs the requests nothing.
    proxy::run(listen, upstream, Box::leak(Box::new(floor)))
}

/// Which paths a route takes: as nginx's `location = PATH`, `location ^~ PREFIX` and `location /`.
enum Match {
    Exact(String),
    Prefix(String),
    Any,
}

struct Route {
    matches: Match,
    cache_control: HeaderValue,
    vary: bool,
}

struct Floor {
    headers: Vec<(HeaderName, HeaderValue)>,
    removed: Vec<HeaderName>,
    id_header: HeaderName,
    id_max_length: usize,
    accept: Vec<HeaderName>,
    routes: Vec<Route>,
    /// The valid key's ID and the SHA-256 of its secret.
    key: Option<(String, [u8; 32])>,
    identity: Vec<(HeaderName, HeaderValue)>,
    identity_names: Vec<HeaderName>,
}

/// A presented key's ID and the SHA-256 of its secret, as the key store computes them.
fn parse_key(presented: &str) -> Option<(&str, [u8; 32])> {
    let (_prefix, rest) = presented.split_once('_')?;
    let (id, secret) = rest.split_once('_')?;
    let mut bytes = [0u8; 32];
    if data_encoding::BASE64URL_NOPAD
        .decode_len(secret.len())
        .ok()?
        != bytes.len()
    {
        return None;
    }
    data_encoding::BASE64URL_NOPAD
        .decode_mut(secret.as_bytes(), &mut bytes)
        .ok()?;
    Some((id, Sha256::digest(bytes).into()))
}

impl Floor {
    /// `key`: the one valid API key, or `None` when the policy checks none (then neither the
    /// key nor the identity headers are handled).
    fn parse(text: &str, key: Option<&str>) -> Result<Self, String> {
        let key = match key {
            Some(key) => {
                let (id, hash) = parse_key(key).ok_or("FLOOR_API_KEY is not an API key")?;
                Some((id.to_owned(), hash))
            }
            None => None,
        };
        let mut floor = Floor {
            headers: Vec::new(),
            removed: Vec::new(),
            id_header: HeaderName::from_static("x-correlation-id"),
            id_max_length: 128,
            accept: Vec::new(),
            routes: Vec::new(),
            key,
            identity: Vec::new(),
            identity_names: Vec::new(),
        };
        let name = |s: &str| HeaderName::try_from(s).map_err(|e| format!("{s:?}: {e}"));
        let value = |s: &str| HeaderValue::try_from(s).map_err(|e| format!("{s:?}: {e}"));
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", n + 1);
            let (directive, rest) = line.split_once(' ').unwrap_or((line, ""));
            // The words a directive takes, the last one being the rest of the line.
            let words = |count: usize| -> Result<Vec<&str>, String> {
                let words: Vec<&str> = rest.splitn(count, ' ').collect();
                if words.len() == count && words.iter().all(|w| !w.is_empty()) {
                    Ok(words)
                } else {
                    Err(at(format!("{directive} takes {count} words")))
                }
            };
            match directive {
                "header" | "identity" => {
                    // The value may be empty (an API key without scopes sends an empty header).
                    let (n, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let pair = (name(n).map_err(at)?, value(v).map_err(at)?);
                    match directive {
                        "header" => floor.headers.push(pair),
                        _ => floor.identity.push(pair),
                    }
                }
                "identity-key-id" => {
                    let id = floor.key.as_ref().map_or("", |(id, _)| id.as_str());
                    floor
                        .identity
                        .push((name(words(1)?[0]).map_err(at)?, value(id).map_err(at)?));
                }
                "remove" => floor.removed.push(name(words(1)?[0]).map_err(at)?),
                "accept" => floor.accept.push(name(words(1)?[0]).map_err(at)?),
                "id" => {
                    let w = words(2)?;
                    floor.id_header = name(w[0]).map_err(at)?;
                    floor.id_max_length = w[1].parse().map_err(|e| at(format!("{e}")))?;
                }
                "exact" | "prefix" | "default" => {
                    let w = words(if directive == "default" { 2 } else { 3 })?;
                    let (matches, rest) = match directive {
                        "exact" => (Match::Exact(w[0].to_owned()), &w[1..]),
                        "prefix" => (Match::Prefix(w[0].to_owned()), &w[1..]),
                        _ => (Match::Any, &w[..]),
                    };
                    floor.routes.push(Route {
                        matches,
                        vary: rest[0] == "vary",
                        cache_control: value(rest[1]).map_err(at)?,
                    });
                }
                other => return Err(at(format!("unknown directive {other:?}"))),
            }
        }
        floor.identity_names = floor.identity.iter().map(|(n, _)| n.clone()).collect();
        if floor
            .routes
            .last()
            .is_none_or(|r| !matches!(r.matches, Match::Any))
        {
            return Err("the last route must be `default`".into());
        }
        Ok(floor)
    }

    /// The index of the first route `path` matches; the default route matches every path.
    fn route(&self, path: &str) -> usize {
        self.routes
            .iter()
            .position(|r| match &r.matches {
                Match::Exact(exact) => path == exact,
                Match::Prefix(prefix) => path.starts_with(prefix.as_str()),
                Match::Any => true,
            })
            .unwrap_or(self.routes.len() - 1)
    }

    /// The caller's correlation ID when the first accepted header present is well-formed,
    /// else a new UUID v4: the gateway's rule, by the gateway's own functions.
    fn correlation_id(&self, headers: &HeaderMap) -> HeaderValue {
        self.accept
            .iter()
            .find_map(|name| headers.get(name))
            .and_then(|value| CorrelationId::from_caller(value, self.id_max_length))
            .unwrap_or_else(CorrelationId::generate)
            .into_header_value()
    }

    fn key_is_valid(&self, (key_id, key_hash): &(String, [u8; 32]), headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(parse_key)
            .is_some_and(|(id, hash)| id == key_id && bool::from(hash.ct_eq(key_hash)))
    }
}

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` for one connection's peer.
#[derive(Clone)]
struct Forwarding([(HeaderName, HeaderValue); 3]);

impl Work for Floor {
    type Connection = Forwarding;
    type Carry = (HeaderValue, usize);

    fn connection(&self, peer: SocketAddr) -> Forwarding {
        let ip = peer.ip().to_string();
        let value =
            |s: String| HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("unknown"));
        Forwarding([
            (
                HeaderName::from_static("x-forwarded-for"),
                value(ip.clone()),
            ),
            (
                HeaderName::from_static("x-forwarded-proto"),
                HeaderValue::from_static("http"),
            ),
            (header::FORWARDED, value(format!("for={ip};proto=http"))),
        ])
    }

    fn request(
        &self,
        forwarding: &Forwarding,
        head: &mut http::request::Parts,
    ) -> Result<Self::Carry, StatusCode> {
        if let Some(key) = &self.key
            && !self.key_is_valid(key, &head.headers)
        {
            return Err(StatusCode::UNAUTHORIZED);
        }
        let id = self.correlation_id(&head.headers);
        let headers = &mut head.headers;
        remove_all(headers, &self.accept);
        if self.key.is_some() {
            remove_all(headers, &self.identity_names);
            for (name, value) in &self.identity {
                headers.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in &forwarding.0 {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(self.id_header.clone(), id.clone());
        Ok((id, self.route(head.uri.path())))
    }

    fn response(&self, (id, route): Self::Carry, headers: &mut HeaderMap) {
        let route = &self.routes[route];
        remove_all(headers, &self.removed);
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(header::CACHE_CONTROL, route.cache_control.clone());
        if route.vary {
            headers.insert(header::VARY, HeaderValue::from_static("origin"));
        }
        headers.insert(self.id_header.clone(), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# a comment
header x-frame-options SAMEORIGIN
remove server
id x-correlation-id 16
accept x-correlation-id
accept x-request-id
identity x-portcullis-tenant bench
identity x-portcullis-scopes
identity-key-id x-portcullis-key-id
exact /v1/status - public, max-age=30
prefix /v1/account/ vary no-store, private
default - no-store
";

    fn key() -> String {
        let secret = data_encoding::BASE64URL_NOPAD.encode(&[7u8; 32]);
        format!("pcl_abcdefghijklmnop_{secret}")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn routes_match_exactly_or_by_prefix_and_the_default_takes_the_rest() {
        let floor = Floor::parse(CONFIG, None).unwrap();
        assert_eq!(floor.route("/v1/status"), 0);
        assert_eq!(floor.route("/v1/status/x"), 2);
        assert_eq!(floor.route("/v1/account/me"), 1);
        assert_eq!(floor.route("/v1/users/42"), 2);
        assert_eq!(floor.routes[0].cache_control, "public, max-age=30");
        assert!(floor.routes[1].vary);
        assert_eq!(floor.identity[1].1, "");
    }

    #[test]
    fn mistakes_name_their_line() {
        let refused = |text| Floor::parse(text, None).err().unwrap_or_default();
        let e = refused("header x-a b\nbogus x\ndefault - no-store");
        assert!(e.contains("line 2") && e.contains("bogus"), "{e}");
        let e = refused("exact /a no-store");
        assert!(e.contains("line 1"), "{e}");
        assert!(
            refused("exact /a - no-store").contains("default"),
            "no default route"
        );
    }

    #[test]
    fn the_first_accepted_id_decides_and_a_malformed_one_is_replaced() {
        let floor = Floor::parse(CONFIG, None).unwrap();
        let id = floor.correlation_id(&headers(&[("x-request-id", "ok-1")]));
        assert_eq!(id, "ok-1");
        let id = floor.correlation_id(&headers(&[
            ("x-correlation-id", "bad value!"),
            ("x-request-id", "ok-1"),
        ]));
        assert_eq!(id.len(), 36, "a new UUID, not the second header: {id:?}");
        let long = floor.correlation_id(&headers(&[("x-correlation-id", "a234567890123456x")]));
        assert_eq!(long.len(), 36, "over the maximum length");
    }

    #[test]
    fn only_the_configured_key_passes() {
        let key = key();
        let floor = Floor::parse(CONFIG, Some(&key)).unwrap();
        let valid = floor.key.as_ref().unwrap();
        let bearer = HeaderValue::try_from(format!("Bearer {key}")).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, bearer);
        assert!(floor.key_is_valid(valid, &h));
        let other = key.replace("_abcdefghijklmnop_", "_bbcdefghijklmnop_");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {other}")).unwrap(),
        );
        assert!(!floor.key_is_valid(valid, &h));
        let mut wrong_secret = key.clone();
        wrong_secret.replace_range(25..26, if &key[25..26] == "A" { "B" } else { "A" });
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {wrong_secret}")).unwrap(),
        );
        assert!(!floor.key_is_valid(valid, &h));
        assert!(!floor.key_is_valid(valid, &HeaderMap::new()));
        assert_eq!(floor.identity[2].1, "abcdefghijklmnop");
    }

    #[test]
    fn removal_takes_only_the_listed_names() {
        let mut h = headers(&[("server", "x"), ("x-keep", "1"), ("x-powered-by", "y")]);
        remove_all(
            &mut h,
            &[header::SERVER, HeaderName::from_static("x-powered-by")],
        );
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }
}
