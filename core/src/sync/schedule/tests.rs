use proptest::prelude::*;

use super::*;

const BACKOFF: Backoff = Backoff {
    base_ms: 1_000,
    max_ms: 60_000,
};

fn timing(interval_ms: f64, debounce_ms: f64) -> Timing {
    Timing {
        interval_ms,
        debounce_ms,
        backoff: BACKOFF,
    }
}

/// A leader whose first run (the one on becoming leader) ended at `t` with `outcome`.
fn after_first_run(t: Timing, end: f64, outcome: Outcome) -> Plan {
    let mut p = Plan::lead(t, 0.0);
    assert_eq!(p.next(0.0, true), Next::Run);
    p.started();
    p.ended(end, outcome, 0.0);
    p
}

const OK: Outcome = Outcome::Done { more: false };
const NETWORK: Outcome = Outcome::Failed(RetryClass::Backoff);
const AUTH: Outcome = Outcome::Failed(RetryClass::StopUntilTokenChange);
const REFUSED: Outcome = Outcome::Failed(RetryClass::StopUntilChange);

#[test]
fn becoming_leader_runs_at_once_whatever_the_debounce() {
    // Why a background run can reach the server before a test's own `db.sync()` even with
    // `debounceMs` at a minute: the run on becoming leader does not wait for the debounce, and
    // writes made while it runs are pushed by it if it has not read the outbox yet.
    let mut p = Plan::lead(timing(0.0, 60_000.0), 5.0);
    p.handle(6.0, Input::Wrote);
    assert_eq!(p.next(6.0, true), Next::Run);
}

#[test]
fn after_a_failed_first_run_writes_wait_for_the_backoff_not_the_debounce() {
    // `sync_faults::a_device_two_hours_ahead...`: the server is down when the device opens, its
    // writes have a minute's debounce, the backoff a base of ten minutes (capped at the default
    // five, so the first retry comes 2.5 to 5 minutes after the failure). Nothing automatic
    // runs before the backoff's retry, so a run reaching the server right after the faults are
    // cleared can only be the first run itself, started late (its requests left after the
    // faults were cleared), not a run the writes scheduled.
    let t = Timing {
        interval_ms: 0.0,
        debounce_ms: 60_000.0,
        backoff: Backoff {
            base_ms: 600_000,
            max_ms: 300_000,
        },
    };
    let mut p = after_first_run(t, 100.0, NETWORK);
    for at in [200.0, 300.0, 400.0, 500.0] {
        p.handle(at, Input::Wrote);
        p.handle(at, Input::Visible);
    }
    let Next::WakeAt(at) = p.next(600.0, true) else {
        panic!("a retry is planned")
    };
    assert!(at >= 150_100.0, "not before the backoff: {at}");
    assert!(p.request(true));
    assert_eq!(p.next(600.0, true), Next::Run, "db.sync() does not wait");
}

#[test]
fn a_burst_of_writes_is_pushed_within_the_debounce_of_its_first() {
    let mut p = after_first_run(timing(0.0, 100.0), 10.0, OK);
    assert_eq!(p.next(10.0, true), Next::Wait);
    p.handle(20.0, Input::Wrote);
    assert_eq!(p.next(20.0, true), Next::WakeAt(120.0));
    p.handle(90.0, Input::Wrote);
    assert_eq!(p.next(90.0, true), Next::WakeAt(120.0), "never pushed back");
    assert_eq!(p.next(120.0, true), Next::Run);
    p.started();
    assert_eq!(p.next(121.0, true), Next::Wait, "one run at a time");
    p.ended(150.0, OK, 0.5);
    assert_eq!(p.next(150.0, true), Next::Wait, "the write was taken");
}

#[test]
fn the_interval_counts_from_the_last_run_end() {
    let mut p = after_first_run(timing(30_000.0, 100.0), 500.0, OK);
    assert_eq!(p.next(600.0, true), Next::WakeAt(30_500.0));
    // An earlier trigger wins.
    p.handle(700.0, Input::Wrote);
    assert_eq!(p.next(700.0, true), Next::WakeAt(800.0));
}

#[test]
fn nothing_runs_offline_and_a_write_made_offline_runs_once_online() {
    let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, OK);
    p.handle(10.0, Input::Wrote);
    assert_eq!(p.next(10.0, false), Next::Wait);
    assert_eq!(p.next(1e9, false), Next::Wait, "not even the interval");
    assert!(!p.request(false), "db.sync() offline is refused at once");
    assert_eq!(activity(p.running(), false, true), Activity::Offline);
    p.handle(5_000.0, Input::Online);
    assert_eq!(p.next(5_000.0, true), Next::Run);
}

#[test]
fn sync_calls_accepted_then_offline_are_refused_once() {
    let mut p = after_first_run(timing(0.0, 100.0), 0.0, OK);
    assert!(p.request(true));
    assert!(p.request(true));
    assert_eq!(p.next(1.0, false), Next::RefuseWaiting);
    assert_eq!(p.next(1.0, false), Next::Wait);
    assert_eq!(p.next(1.0, true), Next::Wait, "forgotten once refused");
}

#[test]
fn a_sync_call_runs_at_once_even_while_backing_off_or_blocked() {
    for outcome in [NETWORK, AUTH, REFUSED] {
        let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, outcome);
        assert!(p.request(true));
        assert_eq!(p.next(1.0, true), Next::Run, "{outcome:?}");
        p.started();
        assert!(p.request(true), "asked during a run");
        assert_eq!(p.next(2.0, true), Next::Wait);
        p.ended(3.0, outcome, 0.0);
        assert_eq!(p.next(3.0, true), Next::Run, "answered by the next run");
    }
}

#[test]
fn backoff_grows_other_triggers_wait_for_it_and_online_forgets_it() {
    let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, NETWORK);
    assert_eq!(
        p.retry_at(),
        Some(500.0),
        "base 1 s, jitter 0: half the step"
    );
    p.handle(10.0, Input::Wrote);
    p.handle(10.0, Input::Visible);
    p.handle(10.0, Input::Poke { moved: true });
    assert_eq!(p.next(10.0, true), Next::WakeAt(500.0));
    assert_eq!(p.next(500.0, true), Next::Run);
    p.started();
    p.ended(600.0, NETWORK, 0.0);
    assert_eq!(p.retry_at(), Some(1_600.0), "second step 2 s");
    assert_eq!(p.attempts(), 2);
    p.handle(700.0, Input::Online);
    assert_eq!(p.retry_at(), None);
    assert_eq!(p.attempts(), 0);
    assert_eq!(p.next(700.0, true), Next::Run);
}

#[test]
fn backoff_is_capped_and_reset_by_a_good_sync() {
    let mut p = after_first_run(timing(0.0, 100.0), 0.0, NETWORK);
    let mut now = 0.0;
    for _ in 0..40 {
        now = p.retry_at().unwrap();
        assert_eq!(p.next(now, true), Next::Run);
        p.started();
        p.ended(now, NETWORK, 0.999);
        assert!(p.retry_at().unwrap() - now <= BACKOFF.max_ms as f64);
    }
    assert_eq!(p.retry_at().unwrap() - now, 59_970.0, "at the cap");
    now = p.retry_at().unwrap();
    assert_eq!(p.next(now, true), Next::Run);
    p.started();
    p.ended(now, OK, 0.0);
    assert_eq!((p.retry_at(), p.attempts()), (None, 0));
    p.handle(now, Input::Wrote);
    assert_eq!(p.next(now + 100.0, true), Next::Run);
    p.started();
    p.ended(now + 100.0, NETWORK, 0.0);
    assert_eq!(p.retry_at(), Some(now + 600.0), "back to the first step");
}

#[test]
fn unauthorised_stops_everything_automatic_until_a_new_token() {
    let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, OK);
    p.handle(1.0, Input::Wrote);
    assert_eq!(p.next(101.0, true), Next::Run);
    p.started();
    assert_eq!(p.ended(101.0, AUTH, 0.0), Some(Stream::Close));
    assert!(p.auth_blocked());
    for input in [
        Input::Wrote,
        Input::Online,
        Input::Visible,
        Input::Poke { moved: true },
        Input::Aside,
    ] {
        p.handle(200.0, input);
        assert_eq!(p.next(1e9, true), Next::Wait, "{input:?}");
    }
    assert_eq!(p.handle(300.0, Input::TokenChanged), Some(Stream::Close));
    assert_eq!(p.next(300.0, true), Next::Run);
}

#[test]
fn refused_as_sent_waits_for_a_change_not_a_timer() {
    let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, REFUSED);
    assert_eq!(p.next(1e9, true), Next::Wait, "no interval");
    p.handle(10.0, Input::Visible);
    p.handle(10.0, Input::Poke { moved: true });
    assert_eq!(
        p.next(1e9, true),
        Next::Wait,
        "no visibility or event either"
    );
    p.handle(20.0, Input::Wrote);
    assert_eq!(p.next(20.0, true), Next::WakeAt(120.0));
    // Each of these unstalls too.
    for input in [Input::Online, Input::Aside, Input::TokenChanged] {
        let mut p = after_first_run(timing(30_000.0, 100.0), 0.0, REFUSED);
        p.handle(20.0, input);
        assert_eq!(p.next(20.0, true), Next::Run, "{input:?}");
    }
}

#[test]
fn server_events_pull_only_when_the_feed_moved() {
    let mut p = after_first_run(timing(0.0, 100.0), 0.0, OK);
    assert_eq!(p.handle(5.0, Input::Poke { moved: false }), None);
    assert_eq!(p.next(5.0, true), Next::Wait);
    p.handle(5.0, Input::Poke { moved: true });
    assert_eq!(p.next(5.0, true), Next::Run);
}

#[test]
fn more_to_push_after_a_sync_runs_again_at_once_and_a_good_sync_opens_the_stream() {
    let mut p = Plan::lead(timing(0.0, 100.0), 0.0);
    assert_eq!(p.next(0.0, true), Next::Run);
    p.started();
    assert_eq!(activity(p.running(), true, false), Activity::Syncing);
    assert_eq!(
        p.ended(50.0, Outcome::Done { more: true }, 0.0),
        Some(Stream::Open)
    );
    assert_eq!(activity(p.running(), true, false), Activity::Idle);
    assert_eq!(activity(p.running(), true, true), Activity::Error);
    assert_eq!(p.next(50.0, true), Next::Run);
}

/// What a property test does to the plan, between two decisions.
#[derive(Clone, Debug)]
enum Step {
    /// Time passes: wake-ups and run ends in it happen in order.
    Wait(f64),
    Input(Input),
    Request,
    /// `navigator.onLine` changes (an `online` event when it comes back).
    Online(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0.0..120_000.0f64).prop_map(Step::Wait),
        3 => Just(Step::Input(Input::Wrote)),
        1 => Just(Step::Input(Input::Visible)),
        1 => any::<bool>().prop_map(|moved| Step::Input(Input::Poke { moved })),
        1 => Just(Step::Input(Input::TokenChanged)),
        1 => Just(Step::Input(Input::Aside)),
        2 => Just(Step::Request),
        2 => any::<bool>().prop_map(Step::Online),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => any::<bool>().prop_map(|more| Outcome::Done { more }),
        3 => Just(NETWORK),
        1 => Just(AUTH),
        1 => Just(REFUSED),
    ]
}

/// The IO side, simulated: runs take a while and end as the test says; requests and writes are
/// tracked to check the plan serves them.
struct World {
    plan: Plan,
    timing: Timing,
    now: f64,
    online: bool,
    /// The running sync: when it ends.
    run_ends: Option<f64>,
    /// Accepted `db.sync()` calls not yet taken by a run.
    asked: usize,
    /// Taken by the running sync.
    in_run: usize,
    /// A local write made since the last run started.
    unsynced_write: Option<f64>,
    outcomes: std::vec::IntoIter<(Outcome, f64, f64)>,
    runs: usize,
}

impl World {
    /// Asks the plan what to do and does it, until it says wait.
    fn decide(&mut self) -> Option<f64> {
        loop {
            match self.plan.next(self.now, self.online) {
                Next::RefuseWaiting => {
                    assert!(!self.online, "refused while online");
                    self.asked = 0;
                }
                Next::Run => {
                    assert!(self.online, "ran offline");
                    assert!(self.run_ends.is_none(), "two runs at once");
                    self.plan.started();
                    self.in_run = std::mem::take(&mut self.asked);
                    self.unsynced_write = None;
                    let (_, duration, _) = self
                        .outcomes
                        .as_slice()
                        .first()
                        .copied()
                        .unwrap_or((OK, 100.0, 0.0));
                    self.run_ends = Some(self.now + duration);
                    self.runs += 1;
                }
                Next::WakeAt(t) => {
                    assert!(t > self.now, "woken for the past");
                    assert!(self.run_ends.is_none());
                    self.check_deadlines(Some(t));
                    return Some(t);
                }
                Next::Wait => {
                    if self.run_ends.is_none() {
                        self.check_deadlines(None);
                    }
                    return None;
                }
            }
        }
    }

    /// Between runs, online: an accepted request runs at once, and a write runs within its
    /// debounce (or at the backoff's retry), unless the token was refused.
    fn check_deadlines(&self, wake: Option<f64>) {
        if !self.online {
            return;
        }
        assert_eq!(self.asked, 0, "a db.sync() waits while nothing runs");
        if self.plan.auth_blocked() {
            return;
        }
        if let Some(w) = self.unsynced_write {
            let limit = (w + self.timing.debounce_ms).max(self.plan.retry_at().unwrap_or(0.0));
            let wake = wake.expect("a write with no run planned");
            assert!(wake <= limit, "write at {w} runs at {wake}, after {limit}");
        }
        if let Some(r) = self.plan.retry_at() {
            assert!(
                r - self.plan.last_run_end <= self.timing.backoff.max_ms as f64,
                "backoff beyond its cap"
            );
        }
    }

    fn end_run(&mut self) {
        self.run_ends = None;
        let (outcome, _, random) = self.outcomes.next().unwrap_or((OK, 100.0, 0.0));
        self.plan.ended(self.now, outcome, random);
        self.in_run = 0;
        if let Outcome::Done { .. } = outcome {
            assert_eq!((self.plan.retry_at(), self.plan.attempts()), (None, 0));
        }
    }

    fn advance(&mut self, by: f64) {
        let until = self.now + by;
        loop {
            let wake = self.decide();
            let next = match (self.run_ends, wake) {
                (Some(e), _) => e,
                (None, Some(w)) => w,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if self.run_ends == Some(next) {
                self.end_run();
            }
        }
        self.now = until;
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Wait(ms) => self.advance(ms),
            Step::Input(input) => {
                if input == Input::Wrote && self.unsynced_write.is_none() {
                    self.unsynced_write = Some(self.now);
                }
                self.plan.handle(self.now, input);
            }
            Step::Request => {
                if self.plan.request(self.online) {
                    self.asked += 1;
                }
            }
            Step::Online(online) => {
                let back = online && !self.online;
                self.online = online;
                if back {
                    self.plan.handle(self.now, Input::Online);
                }
            }
        }
        self.decide();
    }
}

proptest! {
    #[test]
    fn the_plan_serves_every_trigger_one_run_at_a_time(
        interval in prop_oneof![Just(0.0), 1_000.0..60_000.0f64],
        debounce in 0.0..5_000.0f64,
        steps in proptest::collection::vec(step(), 1..60),
        outcomes in proptest::collection::vec((outcome(), 1.0..10_000.0f64, 0.0..1.0f64), 0..40),
    ) {
        let t = timing(interval, debounce);
        let mut w = World {
            plan: Plan::lead(t, 0.0),
            timing: t,
            now: 0.0,
            online: true,
            run_ends: None,
            asked: 0,
            in_run: 0,
            unsynced_write: None,
            outcomes: outcomes.into_iter(),
            runs: 0,
        };
        w.decide();
        for s in steps {
            w.apply(s);
        }
        // Back online with a good token and a server that answers: everything asked for runs.
        w.outcomes = Vec::new().into_iter();
        w.apply(Step::Online(true));
        w.apply(Step::Input(Input::TokenChanged));
        let runs = w.runs;
        w.apply(Step::Input(Input::Wrote));
        w.advance(debounce + BACKOFF.max_ms as f64 + 20_000.0);
        prop_assert!(w.runs > runs, "the last write ran");
        prop_assert_eq!(w.asked + w.in_run, 0);
        prop_assert!(w.unsynced_write.is_none());
    }
}

#[test]
fn an_announced_cursor_moved_unless_it_names_our_position() {
    let moved = |a, k| matches!(Input::poke(a, k), Input::Poke { moved: true });
    let ours = Some("e.t:5~0badc0de");
    assert!(
        !moved(Some("e.t:5"), ours),
        "same position, no check in events"
    );
    assert!(!moved(Some("e.t:5"), Some("e.t:5")));
    assert!(moved(Some("e.t:6"), ours));
    assert!(moved(Some("e.t:50"), ours), "not a prefix match");
    assert!(
        moved(None, ours),
        "an event without a cursor is still worth a pull"
    );
    assert!(moved(Some("e.t:5"), None));
}
