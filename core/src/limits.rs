//! Bounds on names, ids and batch sizes that the client and server both enforce, so a change the
//! client accepts locally is never refused by the server for its shape.

/// Longest collection name.
pub const MAX_COLLECTION_LEN: usize = 64;
/// Longest document id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Most changes in one push request.
pub const MAX_PUSH_CHANGES: usize = 1000;
/// Default and largest page size of a pull.
pub const DEFAULT_PULL_LIMIT: usize = 500;
pub const MAX_PULL_LIMIT: usize = 1000;
/// Default bound on a push request body (the reference server's `--max-body-bytes`): clients split
/// pushes so that one request stays below it.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Why a name or id is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("invalid collection name {0:?}: 1-64 characters, a letter first, then letters, digits, _ or -")]
    CollectionName(String),
    #[error("invalid document id: {0}")]
    Id(String),
}

/// Collection names become IndexedDB store names and SQL values: keep them plain.
pub fn validate_collection_name(name: &str) -> Result<(), LimitError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_COLLECTION_LEN
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(LimitError::CollectionName(name.chars().take(80).collect()))
    }
}

/// Document ids are any non-empty string up to [`MAX_ID_LEN`] bytes without control characters.
pub fn validate_id(id: &str) -> Result<(), LimitError> {
    if id.is_empty() {
        return Err(LimitError::Id("id must not be empty".into()));
    }
    if id.len() > MAX_ID_LEN {
        return Err(LimitError::Id(format!(
            "id is {} bytes, limit is {MAX_ID_LEN}",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(LimitError::Id(
            "id must not contain control characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        assert!(validate_collection_name("tasks").is_ok());
        assert!(validate_collection_name("my_tasks-2").is_ok());
        for bad in ["", "1tasks", "_x", "a b", "a/b", &"x".repeat(65)] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert!(validate_id("a").is_ok());
        assert!(validate_id("ünïcødé id").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("a\nb").is_err());
        assert!(validate_id(&"x".repeat(257)).is_err());
    }
}
