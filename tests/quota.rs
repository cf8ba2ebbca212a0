//! A full disk, for real: Chromium's profile on a 64 MB tmpfs, so its quota manager refuses writes
//! after a few tens of MB with a genuine `QuotaExceededError`. Needs that browser profile, so it is
//! built only with the `quota-test` feature and run with its own WebDriver config (root, once):
//!
//! ```sh
//! mkdir -p /tmp/ferrosync-quota && mountpoint -q /tmp/ferrosync-quota || mount -t tmpfs -o size=64m tmpfs /tmp/ferrosync-quota
//! rm -rf /tmp/ferrosync-quota/profile
//! WASM_BINDGEN_TEST_WEBDRIVER_JSON=tests/quota-webdriver.json CHROMEDRIVER=/usr/bin/chromedriver \
//!   wasm-pack test --headless --chrome --features quota-test -- --test quota
//! ```
#![cfg(feature = "quota-test")]

mod common;

use common::*;
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `n` documents of about `kb` KB of incompressible text each.
fn random_docs(prefix: &str, n: u32, kb: u32) -> JsValue {
    js_eval(&format!(
        "(() => {{ const docs = []; for (let j = 0; j < {n}; j++) {{ \
           const bytes = new Uint8Array({kb} * 512); \
           for (let o = 0; o < bytes.length; o += 65536) crypto.getRandomValues(bytes.subarray(o, o + 65536)); \
           let s = ''; for (const b of bytes) s += b.toString(16).padStart(2, '0'); \
           docs.push({{ id: '{prefix}-' + j, blob: s }}); }} return docs; }})()"
    ))
}

#[wasm_bindgen_test]
async fn quota_exceeded_is_reported_promptly_and_the_store_stays_usable() {
    let name = unique("quota");
    let db = open(&name, r#"{"blobs": {}, "small": {}}"#).await;
    let (blobs, small) = (coll(&db, "blobs"), coll(&db, "small"));
    put(&small, r#"{"id": "before", "n": 1}"#).await;

    let mut stored = 0;
    let mut hit = None;
    for i in 0..100 {
        let docs = random_docs(&format!("b{i}"), 8, 256); // ~2 MB per transaction
        let start = now();
        match wasm_bindgen_futures::JsFuture::from(blobs.bulk_put(docs)).await {
            Ok(v) => stored += v.unchecked_into::<Array>().length(),
            Err(e) => {
                hit = Some((code(&e), message(&e), now() - start));
                break;
            }
        }
    }
    let (code, msg, ms) =
        hit.expect("the quota was never reached (is the profile on the small tmpfs?)");
    assert_eq!(code, "QUOTA_EXCEEDED", "{msg}");
    assert!(msg.contains("nothing was written"), "{msg}");
    assert!(ms < 5000.0, "took {ms} ms to report");
    assert!(stored > 0, "the very first write failed");

    // Nothing of the refused batch was written; everything before it is intact.
    assert_eq!(count(&blobs, "{}").await, stored);
    assert_eq!(db.store().outbox_len().await.unwrap(), stored + 1);
    assert_eq!(get(&small, "before").await, r#"{"id":"before","n":1}"#);

    // Still usable: reads work, and once space is freed writes work again.
    assert_eq!(ids(&small, "{}").await, s(&["before"]));
    for i in 0..(stored / 8) {
        for j in 0..8 {
            ok(blobs.delete(JsValue::from_str(&format!("b{i}-{j}")))).await;
        }
    }
    put(&small, r#"{"id": "after", "n": 2}"#).await;
    assert_eq!(ids(&small, "{}").await, s(&["after", "before"]));
    db.close();
    destroy(&name).await;
}
