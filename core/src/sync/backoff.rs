//! When to try again after a failed sync: exponential backoff with jitter, and which failures are
//! worth retrying at all. Pure, so the browser scheduler and the tests share it; the randomness is
//! passed in (`Math.random()` in the browser, a seeded source in tests).

use crate::protocol::codes;

use super::engine::SyncError;
use super::transport::TransportError;

/// Exponential backoff, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay scale of the first retry.
    pub base_ms: u64,
    /// No delay exceeds this.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            max_ms: 5 * 60_000,
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0 for the first retry after a failure): the step
    /// `base * 2^attempt`, capped at `max`, then "equal jitter": a uniform draw in the upper half
    /// of the step (`unit_random` in `[0, 1)`), so many clients that failed together spread out but
    /// none retries at once.
    pub fn delay_ms(&self, attempt: u32, unit_random: f64) -> u64 {
        let step = self
            .base_ms
            .saturating_mul(1u64.checked_shl(attempt).unwrap_or(u64::MAX))
            .min(self.max_ms);
        let half = step / 2;
        let r = if unit_random.is_finite() {
            unit_random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (half + ((step - half) as f64 * r) as u64).min(step)
    }
}

/// What the scheduler should do after a failed sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Transient (network, 5xx, a garbled reply, a busy store): retry after [`Backoff::delay_ms`].
    Backoff,
    /// 401/403: stop until the app sets a new token.
    StopUntilTokenChange,
    /// The request or the data is refused as it is (4xx, a failing resolver, a store error): stop
    /// retrying on a timer; try again on the next local write or explicit `sync()`.
    StopUntilChange,
}

impl SyncError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            SyncError::Transport(t) => match t {
                TransportError::Network(_)
                | TransportError::Server { .. }
                | TransportError::Malformed(_)
                | TransportError::CursorEpochMismatch(_) => RetryClass::Backoff,
                TransportError::Unauthorized { .. } | TransportError::NamespaceMismatch(_) => {
                    RetryClass::StopUntilTokenChange
                }
                // Our clock (corrected or not) ran ahead of the server's: time fixes it.
                TransportError::BadRequest { code, .. } if code == codes::CLOCK_AHEAD => {
                    RetryClass::Backoff
                }
                TransportError::BadRequest { .. } => RetryClass::StopUntilChange,
            },
            SyncError::Busy | SyncError::AlreadyRunning => RetryClass::Backoff,
            SyncError::Store(_) | SyncError::Resolver { .. } => RetryClass::StopUntilChange,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let b = Backoff {
            base_ms: 1000,
            max_ms: 60_000,
        };
        assert_eq!(b.delay_ms(0, 0.0), 500);
        assert_eq!(b.delay_ms(0, 0.999_999), 999);
        assert_eq!(b.delay_ms(3, 0.0), 4000);
        assert_eq!(b.delay_ms(3, 0.5), 6000);
        for attempt in 0..200 {
            for r in [0.0, 0.3, 0.99, 1.0, -5.0, f64::NAN] {
                let d = b.delay_ms(attempt, r);
                let step = (1000u64 << attempt.min(20)).min(60_000);
                assert!(d >= step / 2 && d <= step, "attempt {attempt} r {r}: {d}");
            }
        }
        assert_eq!(b.delay_ms(100, 0.0), 30_000, "capped, no overflow");
    }

    #[test]
    fn classification() {
        use TransportError as T;
        let c = |t: T| SyncError::Transport(t).retry_class();
        assert_eq!(c(T::Network("x".into())), RetryClass::Backoff);
        let server = T::Server {
            status: 503,
            code: String::new(),
            message: String::new(),
        };
        assert_eq!(c(server), RetryClass::Backoff);
        assert_eq!(
            c(T::Unauthorized {
                status: 401,
                message: String::new()
            }),
            RetryClass::StopUntilTokenChange
        );
        assert_eq!(
            c(T::Unauthorized {
                status: 403,
                message: String::new()
            }),
            RetryClass::StopUntilTokenChange
        );
        let bad = T::BadRequest {
            status: 400,
            code: "INVALID_CHANGE".into(),
            message: String::new(),
        };
        assert_eq!(c(bad), RetryClass::StopUntilChange);
        let ahead = T::BadRequest {
            status: 422,
            code: codes::CLOCK_AHEAD.into(),
            message: String::new(),
        };
        assert_eq!(c(ahead), RetryClass::Backoff);
        assert_eq!(c(T::Malformed("x".into())), RetryClass::Backoff);
    }
}
