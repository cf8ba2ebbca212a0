//! The pull cursor: `<epoch>:<seq>`, opaque to clients. The epoch names the database the sequence
//! belongs to, so a cursor from a reset or restored server is recognised instead of silently
//! skipping or repeating changes.

use crate::error::ApiError;

/// A position in one namespace's change feed of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

/// Length of an epoch: 16 lower-case hex digits (64 random bits).
pub const EPOCH_LEN: usize = 16;

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.epoch, self.seq)
    }

    /// Parses a client's cursor and checks it belongs to `epoch`. Absent or empty means "from the start".
    pub fn parse(raw: Option<&str>, epoch: &str) -> Result<Cursor, ApiError> {
        let raw = match raw {
            None | Some("") => {
                return Ok(Cursor {
                    epoch: epoch.to_string(),
                    seq: 0,
                })
            }
            Some(r) => r,
        };
        let bad = || {
            ApiError::BadCursor(format!(
                "malformed cursor {:?}: pass back a cursor this server returned, or none to start over",
                raw.chars().take(80).collect::<String>()
            ))
        };
        let (e, s) = raw.split_once(':').ok_or_else(bad)?;
        let hex = |x: &str| x.len() == EPOCH_LEN && x.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(e) || s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let seq: u64 = s.parse().map_err(|_| bad())?;
        if e != epoch {
            return Err(ApiError::EpochMismatch(format!(
                "cursor belongs to server epoch {e}, this server's database is epoch {epoch} \
                 (reset or restored): discard the cursor and pull from the start"
            )));
        }
        Ok(Cursor {
            epoch: e.to_string(),
            seq,
        })
    }
}

/// A fresh random epoch.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let e = new_epoch();
        assert_eq!(e.len(), EPOCH_LEN);
        let c = Cursor {
            epoch: e.clone(),
            seq: 42,
        };
        assert_eq!(Cursor::parse(Some(&c.encode()), &e).unwrap(), c);
        assert_eq!(Cursor::parse(None, &e).unwrap().seq, 0);
        assert_eq!(Cursor::parse(Some(""), &e).unwrap().seq, 0);
        for bad in [
            "x",
            "abc:1",
            &format!("{e}:"),
            &format!("{e}:-1"),
            &format!("{e}:1x"),
            &format!("{e}:99999999999999999999999"),
        ] {
            assert!(
                matches!(Cursor::parse(Some(bad), &e), Err(ApiError::BadCursor(_))),
                "{bad}"
            );
        }
        let other = "0123456789abcdef";
        assert!(matches!(
            Cursor::parse(Some(&format!("{other}:3")), &e),
            Err(ApiError::EpochMismatch(_))
        ));
    }
}
