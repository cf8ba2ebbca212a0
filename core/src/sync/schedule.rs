//! When the leading instance syncs: the scheduler's plan as a pure state machine, so its rules are
//! tested natively. The browser's task (`src/sync/schedule.rs`) owns the IO (timers, Web Locks,
//! the channel between tabs, the engine): it tells the [`Plan`] what happened, with the time
//! (`now`, ms since the epoch), asks it [`Plan::next`] and does what it answers.
//!
//! The rules (`docs/ARCHITECTURE.md`, "When it syncs"): becoming leader, `online`, the page
//! becoming visible, a server event with a new cursor, `db.sync()` and a new token sync now; a local
//! write within `debounce_ms`; the interval `interval_ms` after the last run. Nothing runs
//! offline. After a failure [`RetryClass`] decides: backoff with jitter (other triggers wait for
//! it), stop until a new token, or stop timer retries until a local write.

use super::backoff::{Backoff, RetryClass};

/// The app's timing options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// A sync this long after the last run ended (0: no interval).
    pub interval_ms: f64,
    /// A local write is pushed within this long (the first write of a burst sets the deadline).
    pub debounce_ms: f64,
    pub backoff: Backoff,
}

/// Something that happened, as far as the plan cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A local write committed, in this instance or in another one.
    Wrote,
    /// The `online` event.
    Online,
    /// The page became visible again.
    Visible,
    /// The server's event stream announced its feed; `moved`: at a cursor other than ours (or
    /// at one it did not name).
    Poke { moved: bool },
    /// `db.setToken()`, here or in another instance.
    TokenChanged,
    /// `db.retryRejected()` / `db.discardRejected()`: done before the next sync, which comes now.
    Aside,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded; `more`: settling conflicts wrote new local versions to push.
    Done { more: bool },
    /// It failed; core's [`RetryClass`] of the error.
    Failed(RetryClass),
}

/// What the IO side does next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// Offline with `db.sync()` calls waiting: answer them `SYNC_OFFLINE` now (the plan has
    /// forgotten them), then ask again.
    RefuseWaiting,
    /// Start a sync now ([`Plan::started`]); it answers every `db.sync()` accepted so far.
    Run,
    /// Start a sync at this time ([`Plan::started`]), unless an input comes first (then ask
    /// again).
    WakeAt(f64),
    /// Only an input can start a sync.
    Wait,
}

/// What the IO side does with the server's event stream after an input or an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Open it if it is not open (after a good sync: a stream the browser gave up on comes back).
    Open,
    /// Close it (its token is no longer good).
    Close,
}

/// The status word an app sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Idle,
    Syncing,
    Offline,
    Error,
}

/// The leader's schedule.
#[derive(Clone, Debug)]
pub struct Plan {
    timing: Timing,
    /// A sync is wanted at this time (trigger, debounce).
    due: Option<f64>,
    /// Failing with a transient error: the next automatic attempt, and how many failed so far.
    retry_at: Option<f64>,
    attempts: u32,
    /// 401/403: no automatic sync until the token changes.
    auth_blocked: bool,
    /// Refused as sent: no timer sync until a local write.
    stalled: bool,
    last_run_end: f64,
    /// `db.sync()` calls accepted and not yet taken by a run.
    waiting: usize,
    running: bool,
}

impl Input {
    /// The event stream announced the cursor `announced`; `known` is this device's. Moved unless
    /// both name the same position: a pull's cursor adds `~<check>` after its position
    /// (PROTOCOL.md section 7.3), an event's does not.
    pub fn poke(announced: Option<&str>, known: Option<&str>) -> Input {
        // By bytes: a `char` search links a searcher the module has no other use for.
        let position = |c: &'_ str| -> Vec<u8> {
            let b = c.as_bytes();
            b[..b.iter().position(|&x| x == b'~').unwrap_or(b.len())].to_vec()
        };
        Input::Poke {
            moved: announced.is_none() || announced.map(position) != known.map(position),
        }
    }
}

impl Plan {
    /// The plan of an instance that has just become leader: a sync is due at once.
    pub fn lead(timing: Timing, now: f64) -> Plan {
        Plan {
            timing,
            due: Some(now),
            retry_at: None,
            attempts: 0,
            auth_blocked: false,
            stalled: false,
            last_run_end: now,
            waiting: 0,
            running: false,
        }
    }

    /// Folds one input into the plan.
    pub fn handle(&mut self, now: f64, input: Input) -> Option<Stream> {
        match input {
            Input::Wrote => {
                self.stalled = false;
                let soon = now + self.timing.debounce_ms;
                self.due = Some(self.due.map_or(soon, |d| d.min(soon)));
            }
            Input::Online => {
                self.stalled = false;
                self.forget_failures();
                self.due = Some(now);
            }
            Input::Visible => {
                if !self.stalled {
                    self.due = Some(now);
                }
            }
            Input::Poke { moved } => {
                if moved && !self.stalled {
                    self.due = Some(self.due.map_or(now, |d| d.min(now)));
                }
            }
            Input::TokenChanged => {
                self.auth_blocked = false;
                self.stalled = false;
                self.forget_failures();
                self.due = Some(now);
                return Some(Stream::Close);
            }
            Input::Aside => {
                self.stalled = false;
                self.due = Some(now);
            }
        }
        None
    }

    /// A `db.sync()` call; false: refused at once (offline).
    pub fn request(&mut self, online: bool) -> bool {
        if online {
            self.waiting += 1;
        }
        online
    }

    /// What to do now (`online`: `navigator.onLine` at this moment).
    pub fn next(&mut self, now: f64, online: bool) -> Next {
        if self.running {
            return Next::Wait;
        }
        if !online {
            if self.waiting > 0 {
                self.waiting = 0;
                return Next::RefuseWaiting;
            }
            return Next::Wait;
        }
        if self.waiting > 0 {
            return Next::Run;
        }
        if self.auth_blocked {
            return Next::Wait;
        }
        let mut t = self.due;
        if let Some(r) = self.retry_at {
            t = Some(t.map_or(r, |d| d.max(r)));
        } else if !self.stalled && self.timing.interval_ms > 0.0 {
            let at = self.last_run_end + self.timing.interval_ms;
            t = Some(t.map_or(at, |d| d.min(at)));
        }
        match t {
            Some(t) if t <= now => Next::Run,
            Some(t) => Next::WakeAt(t),
            None => Next::Wait,
        }
    }

    /// A run started (after [`Next::Run`]): it takes the wanted sync and every waiting call; until
    /// [`Plan::ended`] nothing else starts.
    pub fn started(&mut self) {
        self.running = true;
        self.due = None;
        self.waiting = 0;
    }

    /// The run ended at `now`; `unit_random` in `[0, 1)` jitters a backoff.
    pub fn ended(&mut self, now: f64, outcome: Outcome, unit_random: f64) -> Option<Stream> {
        self.running = false;
        self.last_run_end = now;
        match outcome {
            Outcome::Done { more } => {
                self.forget_failures();
                self.stalled = false;
                self.auth_blocked = false;
                if more {
                    self.due = Some(self.due.map_or(now, |d| d.min(now)));
                }
                Some(Stream::Open)
            }
            Outcome::Failed(RetryClass::Backoff) => {
                let delay = self.timing.backoff.delay_ms(self.attempts, unit_random);
                self.attempts = self.attempts.saturating_add(1);
                self.retry_at = Some(now + delay as f64);
                None
            }
            Outcome::Failed(RetryClass::StopUntilTokenChange) => {
                self.auth_blocked = true;
                self.retry_at = None;
                Some(Stream::Close)
            }
            Outcome::Failed(RetryClass::StopUntilChange) => {
                self.stalled = true;
                self.retry_at = None;
                None
            }
        }
    }

    pub fn running(&self) -> bool {
        self.running
    }

    /// The next automatic retry after a transient failure, if backing off.
    pub fn retry_at(&self) -> Option<f64> {
        self.retry_at
    }

    /// Transient failures in a row.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Stopped until the token changes (401/403).
    pub fn auth_blocked(&self) -> bool {
        self.auth_blocked
    }

    fn forget_failures(&mut self) {
        self.retry_at = None;
        self.attempts = 0;
    }
}

/// The status word, in the leader and in the others: syncing wins, then offline, then the last
/// error.
pub fn activity(syncing: bool, online: bool, has_error: bool) -> Activity {
    if syncing {
        Activity::Syncing
    } else if !online {
        Activity::Offline
    } else if has_error {
        Activity::Error
    } else {
        Activity::Idle
    }
}

#[cfg(test)]
mod tests;
