//! A seeded randomized simulation in the browser: three devices edit the same documents at random
//! (two collections: last-write-wins and field merge) while going offline and online, syncing on
//! their own (debounced writes, the server's events, an interval) or when asked, with the fault
//! proxy failing requests now and then (5xx, dropped connections, a server killed after applying a
//! push). At the end, all online, they must hold identical data and nothing pending.
//!
//! `FERROSYNC_TEST_SERVER=... FERROSYNC_TEST_CONTROL=... [FERROSYNC_SIM_SEED=n] \
//!  CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test sync_sim`

mod common;

use common::sync::*;
use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// xorshift64*: small, seeded, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const COLLECTIONS: &str = r#"{"tasks": {"indexes": ["done"]}, "notes": {"conflict": "merge"}}"#;

fn random_doc(rng: &mut Rng, id: &str, step: usize) -> String {
    let mut fields = vec![format!(r#""id": "{id}""#)];
    if rng.chance(80) {
        fields.push(format!(r#""title": "t{step}-{}""#, rng.below(1000)));
    }
    if rng.chance(60) {
        fields.push(format!(r#""done": {}"#, rng.chance(50)));
    }
    if rng.chance(50) {
        fields.push(format!(r#""n": {}"#, rng.below(100)));
    }
    if rng.chance(30) {
        fields.push(format!(r#""tags": ["a{}", "b"]"#, rng.below(5)));
    }
    format!("{{{}}}", fields.join(", "))
}

async fn simulate(seed: u64, steps: usize) {
    web_sys::console::log_1(&JsValue::from_str(&format!(
        "sync simulation: seed {seed}, {steps} steps"
    )));
    clear_faults().await;
    let mut rng = Rng(seed.max(1));
    let token = unique(&format!("sim{seed}"));
    let extra = r#"{"events": true, "intervalMs": 700, "debounceMs": 30, "backoffBaseMs": 50, "backoffMaxMs": 400}"#;
    let mut devices = Vec::new();
    for name in ["d0", "d1", "d2"] {
        let opts = Opts {
            collections: COLLECTIONS,
            sync_extra: extra,
            ..Opts::default()
        };
        devices.push(device(&unique(&format!("sim-{name}")), &token, opts).await);
    }
    let mut offline = [false; 3];
    let ids = ["a", "b", "c", "d", "e", "f"];
    for step in 0..steps {
        let i = rng.below(3) as usize;
        let d = &devices[i];
        let coll = if rng.chance(50) { "tasks" } else { "notes" };
        let id = ids[rng.below(ids.len() as u64) as usize];
        match rng.below(100) {
            0..=44 => {
                d.put(coll, &random_doc(&mut rng, id, step)).await;
            }
            45..=54 => d.delete(coll, id).await,
            55..=64 => {
                offline[i] = !offline[i];
                d.offline(offline[i]);
            }
            65..=79 => {
                // An explicit sync: fine, offline (SYNC_OFFLINE), or a failure the proxy injected.
                if let Err(e) = JsFuture::from(d.db.sync()).await {
                    let c = code(&e);
                    assert!(
                        ["SYNC_OFFLINE", "SYNC_NETWORK", "SYNC_SERVER"].contains(&c.as_str()),
                        "step {step}: unexpected {c}: {}",
                        message(&e)
                    );
                }
            }
            80..=85 => match rng.below(3) {
                0 => fault("error500", "", 1).await,
                1 => fault("down", "", 1).await,
                _ => fault("kill_after_forward", "/v1/push", 1).await,
            },
            _ => sleep(rng.below(40) as i32).await,
        }
    }
    clear_faults().await;
    for (i, d) in devices.iter().enumerate() {
        if offline[i] {
            d.offline(false);
        }
    }
    let refs: Vec<&Device> = devices.iter().collect();
    let tasks = converge(&refs, "tasks").await;
    let notes = converge(&refs, "notes").await;
    // Converging one collection may have synced the other further: check both once more.
    assert_eq!(converge(&refs, "tasks").await, tasks);
    web_sys::console::log_1(&JsValue::from_str(&format!(
        "seed {seed}: converged; tasks {tasks}; notes {notes}"
    )));
    for d in devices {
        d.close_and_destroy().await;
    }
}

fn seeds() -> Vec<u64> {
    match option_env!("FERROSYNC_SIM_SEED") {
        Some(s) => vec![s.parse().expect("FERROSYNC_SIM_SEED must be a number")],
        None => vec![1, 2, 3],
    }
}

#[wasm_bindgen_test]
async fn three_devices_editing_at_random_while_going_offline_end_identical() {
    for seed in seeds() {
        simulate(seed, 150).await;
    }
}
