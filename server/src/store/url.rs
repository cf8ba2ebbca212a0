//! Database URLs: which database a URL names, and the URL without its secrets for logs.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// What a `sqlite:` URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqliteUrl {
    /// `sqlite::memory:`, `sqlite://:memory:` or `mode=memory`: a database of this process only.
    Memory,
    /// A file, created if missing.
    File(PathBuf),
}

/// Parses `sqlite://path`, `sqlite:path` or `sqlite::memory:`, with the query parameters of
/// sqlx's SQLite URLs (which this server has always accepted): the path is percent-decoded (so a
/// file name may hold `?` or `#`), and a parameter that is not one of SQLite's URI parameters is
/// refused, so a typo is not silently ignored. The file is always opened read-write and created if
/// missing; parameters other than `mode=memory` change nothing.
pub fn parse_sqlite(url: &str) -> Result<SqliteUrl, String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut memory = path == ":memory:";
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| format!("query of {:?}: {e}", redact(url)))?;
    for (key, value) in &params {
        let known = match key.as_str() {
            "mode" => {
                memory |= value == "memory";
                matches!(value.as_str(), "ro" | "rw" | "rwc" | "memory")
            }
            "cache" => matches!(value.as_str(), "private" | "shared"),
            "immutable" => matches!(value.as_str(), "true" | "false" | "1" | "0"),
            "vfs" => true,
            _ => return Err(format!("unknown query parameter `{key}` in a SQLite URL")),
        };
        if !known {
            return Err(format!(
                "unknown value {value:?} for `{key}` in a SQLite URL"
            ));
        }
    }
    if memory {
        return Ok(SqliteUrl::Memory);
    }
    let path = percent_decode_str(path)
        .decode_utf8()
        .map_err(|e| format!("SQLite path is not UTF-8 once decoded: {e}"))?;
    Ok(SqliteUrl::File(PathBuf::from(path.as_ref())))
}

/// Query parameters of a database URL whose values are secrets (matched as substrings of the
/// lower-cased name: `password`, `sslpassword`, `sslkey`, `token`...).
const SECRET_PARAMS: [&str; 5] = ["pass", "secret", "token", "key", "auth"];

/// A database URL without its secrets (the user-info password and secret-looking query
/// parameters), for logs and errors.
pub fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = match (main.find("://"), main.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &main[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &main[..s + 3], &main[at..]),
                None => main.to_string(),
            }
        }
        _ => main.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if SECRET_PARAMS
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s)) =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        let file = |p: &str| Ok(SqliteUrl::File(PathBuf::from(p)));
        assert_eq!(parse_sqlite("sqlite://data/f.db"), file("data/f.db"));
        assert_eq!(parse_sqlite("sqlite:///abs/f.db"), file("/abs/f.db"));
        assert_eq!(parse_sqlite("sqlite:f.db"), file("f.db"));
        assert_eq!(parse_sqlite("sqlite://a%3Fb%23c.db"), file("a?b#c.db"));
        assert_eq!(parse_sqlite("sqlite://f.db?mode=rwc"), file("f.db"));
        for memory in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://x.db?mode=memory&cache=shared",
        ] {
            assert_eq!(parse_sqlite(memory), Ok(SqliteUrl::Memory), "{memory}");
        }
        for bad in [
            "sqlite://f.db?mdoe=rwc",
            "sqlite://f.db?mode=fast",
            "sqlite://f.db?cache=all",
            "sqlite://%ff.db",
        ] {
            assert!(parse_sqlite(bad).is_err(), "{bad}");
        }
    }
}
