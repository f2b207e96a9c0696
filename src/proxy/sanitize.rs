//! Request-path sanitizing before routing, as Traefik's `sanitizePath` (on by default): dot
//! segments are resolved and repeated slashes merged, so `/public/../admin` cannot reach a route
//! for `/admin` through a rule written for `/public`, and the backend sees the same path the
//! router matched. A trailing slash is kept. Percent-encoded dots (`%2e`) count as dots, since
//! backends decode them.

/// The cleaned path, or None when `path` is already clean (the common case: no allocation).
pub fn clean_path(path: &str) -> Option<String> {
    if is_clean(path) {
        return None;
    }
    let trailing = path.ends_with('/')
        || path.ends_with("/.")
        || path.ends_with("/..")
        || ends_with_ci(path, "/%2e")
        || ends_with_ci(path, "/%2e%2e")
        || ends_with_ci(path, "/.%2e")
        || ends_with_ci(path, "/%2e.");
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match dots(seg) {
            _ if seg.is_empty() => {}
            1 => {}
            2 => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    let mut cleaned = String::with_capacity(path.len());
    for seg in &out {
        cleaned.push('/');
        cleaned.push_str(seg);
    }
    if cleaned.is_empty() || trailing {
        cleaned.push('/');
    }
    Some(cleaned)
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// 1 for a `.` segment, 2 for `..` (either may be percent-encoded), 0 otherwise.
fn dots(seg: &str) -> u8 {
    let b = seg.as_bytes();
    let mut i = 0;
    let mut n = 0u8;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b.len() >= i + 3 && b[i] == b'%' && b[i + 1] == b'2' && (b[i + 2] | 0x20) == b'e'
        {
            i += 3;
        } else {
            return 0;
        }
        n += 1;
        if n > 2 {
            return 0;
        }
    }
    n
}

fn is_clean(path: &str) -> bool {
    // `*` (OPTIONS *) and authority-form targets are not paths: leave them alone.
    if !path.starts_with('/') {
        return true;
    }
    if path.contains("//") {
        return false;
    }
    path.split('/').all(|seg| dots(seg) == 0)
}

/// Replace the path of `uri` by its cleaned form, keeping the query; false when unchanged.
pub fn clean_uri(uri: &mut http::Uri) -> bool {
    let Some(clean) = clean_path(uri.path()) else {
        return false;
    };
    let pq = match uri.query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = pq.parse().ok();
    match http::Uri::from_parts(parts) {
        Ok(u) => {
            *uri = u;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn table() {
        let rows: &[(&str, Option<&str>)] = &[
            ("/", None),
            ("/a/b", None),
            ("/a/b/", None),
            ("/a.b/..c/...", None),
            ("//exact", Some("/exact")),
            ("/x/../exact", Some("/exact")),
            ("/a/./b", Some("/a/b")),
            ("/a/b/..", Some("/a/")),
            ("/a/b/../", Some("/a/")),
            ("/../../etc/passwd", Some("/etc/passwd")),
            ("/public/%2e%2e/admin", Some("/admin")),
            ("/public/%2E./admin", Some("/admin")),
            ("/a//b///c/", Some("/a/b/c/")),
            ("/..", Some("/")),
            ("*", None),
        ];
        for (input, want) in rows {
            assert_eq!(clean_path(input).as_deref(), *want, "{input}");
        }
    }
}
