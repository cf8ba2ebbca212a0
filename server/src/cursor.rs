//! The pull cursor: `<epoch>.<namespace tag>:<seq>`, opaque to clients. The epoch names the
//! database the sequence belongs to, so a cursor from a reset or restored server is recognised
//! instead of silently skipping or repeating changes; the namespace tag (8 hex digits of
//! SHA-256 of `<epoch>:<namespace>`) names the feed, so a cursor kept across a change of account
//! is refused instead of skipping the other namespace's first changes. A pull's cursor ends with
//! `~<check>`, what was at its position ([`position_check`](crate::store::position_check)): a
//! database restored from an older copy that kept its epoch (restored by hand, not with
//! `ferrosync-server restore`) reuses
//! positions, and a cursor whose check differs from the change now at its position is refused as
//! one of another epoch instead of silently skipping the changes written since the restore.
//! Cursors written before the tag or the check existed (`<epoch>:<seq>`, `<epoch>.<tag>:<seq>`)
//! are still accepted.

use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::{CHECK_LEN, EPOCH_LEN};

/// A position in one namespace's change feed of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    /// [`namespace_tag`] of the feed's namespace.
    pub tag: String,
    pub seq: u64,
    /// [`position_check`](crate::store::position_check) of the change at `seq`, when the cursor
    /// names one.
    pub check: Option<String>,
}

/// Length of a namespace tag: 8 lower-case hex digits.
pub const TAG_LEN: usize = 8;

/// The namespace's tag in cursors of database `epoch`.
pub fn namespace_tag(epoch: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{epoch}:{namespace}").as_bytes());
    digest[..TAG_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Cursor {
    /// Position `seq` of `namespace`'s feed in database `epoch`.
    pub fn at(epoch: &str, namespace: &str, seq: u64) -> Cursor {
        Cursor {
            epoch: epoch.to_string(),
            tag: namespace_tag(epoch, namespace),
            seq,
            check: None,
        }
    }

    pub fn encode(&self) -> String {
        match &self.check {
            Some(c) => format!("{}.{}:{}~{c}", self.epoch, self.tag, self.seq),
            None => format!("{}.{}:{}", self.epoch, self.tag, self.seq),
        }
    }

    /// Refuses the cursor when the change now at its position is not the one it names (`at`:
    /// the check of the change there, if any): the database was restored from an older copy
    /// and the position reused. Nothing to compare when either is unknown.
    pub fn check_position(&self, at: Option<&str>) -> Result<(), ApiError> {
        match (&self.check, at) {
            (Some(mine), Some(there)) if mine != there => Err(ApiError::EpochMismatch(format!(
                "cursor names a change this server's feed no longer holds at position {} \
                 (the database was restored from an older copy): discard the cursor and pull \
                 from the start",
                self.seq
            ))),
            _ => Ok(()),
        }
    }

    /// Parses a client's cursor and checks it belongs to `epoch` and to `namespace`. Absent or
    /// empty means "from the start".
    pub fn parse(raw: Option<&str>, epoch: &str, namespace: &str) -> Result<Cursor, ApiError> {
        let raw = match raw {
            None | Some("") => return Ok(Cursor::at(epoch, namespace, 0)),
            Some(r) => r,
        };
        let bad = || {
            ApiError::BadCursor(format!(
                "malformed cursor {:?}: pass back a cursor this server returned, or none to start over",
                raw.chars().take(80).collect::<String>()
            ))
        };
        let (head, rest) = raw.split_once(':').ok_or_else(bad)?;
        let (s, check) = match rest.split_once('~') {
            Some((s, c)) => (s, Some(c)),
            None => (rest, None),
        };
        let (e, tag) = match head.split_once('.') {
            Some((e, tag)) => (e, Some(tag)),
            None => (head, None),
        };
        let hex = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(e, EPOCH_LEN)
            || !tag.is_none_or(|t| hex(t, TAG_LEN))
            || !check.is_none_or(|c| hex(c, CHECK_LEN))
            || s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let seq: u64 = s.parse().map_err(|_| bad())?;
        if e != epoch {
            return Err(ApiError::EpochMismatch(format!(
                "cursor belongs to server epoch {e}, this server's database is epoch {epoch} \
                 (reset or restored): discard the cursor and pull from the start"
            )));
        }
        let mut mine = Cursor::at(epoch, namespace, seq);
        if tag.is_some_and(|t| !t.eq_ignore_ascii_case(&mine.tag)) {
            return Err(another_namespace());
        }
        mine.check = check.map(str::to_ascii_lowercase);
        Ok(mine)
    }

    /// The check of the cursor a push names (where its device has been syncing): refused only
    /// when it is this database's cursor of another namespace. Anything else about it (old
    /// format, another epoch, malformed) is for the device's next pull to find out.
    pub fn check_pushed(raw: &str, epoch: &str, namespace: &str) -> Result<(), ApiError> {
        match Cursor::parse(Some(raw), epoch, namespace) {
            Err(e @ ApiError::NamespaceMismatch(_)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// A cursor of another namespace: the token is another account's than the one the device
/// synced with. Its own code, not `BAD_CURSOR`: a client answers that one by re-syncing from the
/// start, which would offer the last account's documents to this one.
fn another_namespace() -> ApiError {
    ApiError::NamespaceMismatch(
        "cursor belongs to another namespace (another account's feed): this device synced \
         with another account; use that account's token, or start over with an empty local \
         database for this one"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{new_epoch, position_check};

    #[test]
    fn round_trip_and_errors() {
        let e = new_epoch();
        assert_eq!(e.len(), EPOCH_LEN);
        let c = Cursor::at(&e, "ns", 42);
        assert_eq!(Cursor::parse(Some(&c.encode()), &e, "ns").unwrap(), c);
        assert_eq!(Cursor::parse(None, &e, "ns").unwrap().seq, 0);
        assert_eq!(Cursor::parse(Some(""), &e, "ns").unwrap().seq, 0);
        // A cursor from before the tag.
        assert_eq!(
            Cursor::parse(Some(&format!("{e}:42")), &e, "ns").unwrap(),
            c
        );
        // With the check of the change at its position.
        let checked = Cursor {
            check: Some(position_check("t", "a", "000000000001-000000-c")),
            ..c.clone()
        };
        assert!(checked
            .encode()
            .ends_with(&format!(":42~{}", checked.check.as_ref().unwrap())));
        assert_eq!(
            Cursor::parse(Some(&checked.encode()), &e, "ns").unwrap(),
            checked
        );
        let here = checked.check.as_deref();
        assert!(checked.check_position(here).is_ok());
        assert!(
            checked.check_position(None).is_ok(),
            "rewritten since: nothing to compare"
        );
        assert!(
            c.check_position(Some("0badc0de")).is_ok(),
            "an unchecked cursor"
        );
        match checked.check_position(Some("0badc0de")) {
            Err(ApiError::EpochMismatch(m)) => assert!(m.contains("restored"), "{m}"),
            r => panic!("{r:?}"),
        }
        for bad in [
            "x",
            "abc:1",
            &format!("{e}:"),
            &format!("{e}:-1"),
            &format!("{e}:1x"),
            &format!("{e}.zz:1"),
            &format!("{e}.:1"),
            &format!("{e}:99999999999999999999999"),
            &format!("{e}:1~"),
            &format!("{e}:1~abc"),
            &format!("{e}:1~zzzzzzzz"),
            &format!("{e}:~0badc0de"),
        ] {
            assert!(
                matches!(
                    Cursor::parse(Some(bad), &e, "ns"),
                    Err(ApiError::BadCursor(_))
                ),
                "{bad}"
            );
        }
        let other = "0123456789abcdef";
        assert!(matches!(
            Cursor::parse(Some(&format!("{other}:3")), &e, "ns"),
            Err(ApiError::EpochMismatch(_))
        ));
        match Cursor::parse(Some(&c.encode()), &e, "other") {
            Err(ApiError::NamespaceMismatch(m)) => assert!(m.contains("another namespace"), "{m}"),
            r => panic!("{r:?}"),
        }
    }
}
