//! The push hook end to end with two browser devices (issue 16): real headless Chromium, real
//! IndexedDB, a real ferrosync-server started with `--push-hook` pointing at the example hook
//! (`examples/push-hook/hook.py`: titles over 200 characters are refused with `TITLE_TOO_LONG`,
//! titles with outer whitespace are trimmed). `scripts/test.sh` starts both and sets
//! `FERROSYNC_TEST_HOOK_SERVER` (the server's base URL) when compiling the browser tests.

mod common;

use common::sync::*;
use common::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The hooked server's sync API, handed to the devices through `sync_extra`.
fn hooked() -> String {
    match option_env!("FERROSYNC_TEST_HOOK_SERVER") {
        Some(s) if !s.is_empty() => format!(r#"{{"url": "{}/v1"}}"#, s.trim_end_matches('/')),
        _ => panic!(
            "FERROSYNC_TEST_HOOK_SERVER was not set at compile time: start ferrosync-server with \
             --push-hook http://127.0.0.1:<port> and examples/push-hook/hook.py --port <port>, as \
             scripts/test.sh does"
        ),
    }
}

/// `status.rejected` as `[(collection, id, code, message)]`.
fn rejected(d: &Device) -> Vec<(String, String, String, String)> {
    let list: js_sys::Array = prop(&d.status(), "rejected").into();
    list.iter()
        .map(|r| {
            let s = |k: &str| prop(&r, k).as_string().unwrap();
            (s("collection"), s("id"), s("code"), s("message"))
        })
        .collect()
}

fn title_of(doc: &str) -> String {
    prop(&json(doc), "title").as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn the_hook_refuses_one_change_and_trims_another_for_every_device() {
    let token = unique("hook");
    let url = hooked();
    let opts = || Opts {
        sync_extra: &url,
        ..Opts::default()
    };
    let a = device(&unique("a"), &token, opts()).await;
    let b = device(&unique("b"), &token, opts()).await;
    a.settled().await;
    b.settled().await;

    let long = "x".repeat(201);
    a.put("tasks", &format!(r#"{{"id": "long", "title": "{long}"}}"#))
        .await;
    a.put("tasks", r#"{"id": "pad", "title": "  buy milk  "}"#)
        .await;
    a.put("tasks", r#"{"id": "ok", "title": "call mum"}"#).await;
    a.sync().await;

    // The refused change alone is set aside, with the hook's code and message; it stays local.
    let aside = rejected(&a);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let (coll, id, code, msg) = &aside[0];
    assert_eq!(
        (coll.as_str(), id.as_str(), code.as_str()),
        ("tasks", "long", "TITLE_TOO_LONG")
    );
    assert!(msg.contains("200"), "the hook's message: {msg}");
    assert_eq!(title_of(&a.get("tasks", "long").await), long);
    assert_eq!(a.pending().await, 1, "the refused edit stays pending");

    // The other device gets the accepted change and the hook's replacement, not the refused one.
    b.sync().await;
    assert_eq!(title_of(&b.get("tasks", "ok").await), "call mum");
    assert_eq!(title_of(&b.get("tasks", "pad").await), "buy milk");
    assert_eq!(b.get("tasks", "long").await, "undefined");

    // The writer gets the replacement too, and it wins over its own copy.
    a.sync().await;
    assert_eq!(title_of(&a.get("tasks", "pad").await), "buy milk");

    // Editing the refused document into something the hook accepts pushes it and clears the row.
    a.put("tasks", r#"{"id": "long", "title": "short now"}"#)
        .await;
    a.sync().await;
    assert!(rejected(&a).is_empty(), "{:?}", rejected(&a));
    assert_eq!(a.pending().await, 0);
    b.sync().await;
    assert_eq!(title_of(&b.get("tasks", "long").await), "short now");
    assert_eq!(
        converge(&[&a, &b], "tasks").await,
        a.all("tasks").await,
        "both devices hold the same documents"
    );
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}
