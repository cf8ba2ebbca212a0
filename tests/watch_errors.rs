//! A live query's life after `watch` returned: a re-run that fails goes to `onError` with a
//! `FerrosyncError` (and the watch keeps running), and the watch ends with `onEnd` when its database
//! is closed or deleted. Real IndexedDB in headless Chromium; the failure is real too: a stored
//! record is corrupted through a raw IndexedDB connection so that reading it fails.
//! `wasm-pack test --headless --chrome -- --test watch_errors`
//!
//! `watch` is called through its JavaScript method (`Reflect`), as an application calls it.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Errors and ends one watch reported.
#[derive(Default)]
struct Events {
    errors: RefCell<Vec<JsValue>>,
    ends: RefCell<usize>,
}

struct Handlers {
    events: Rc<Events>,
    on_error: Closure<dyn FnMut(JsValue)>,
    on_end: Closure<dyn FnMut()>,
}

impl Handlers {
    fn new() -> Handlers {
        let events: Rc<Events> = Rc::default();
        let (a, b) = (events.clone(), events.clone());
        Handlers {
            events,
            on_error: Closure::new(move |e: JsValue| a.errors.borrow_mut().push(e)),
            on_end: Closure::new(move || *b.ends.borrow_mut() += 1),
        }
    }

    fn errors(&self) -> usize {
        self.events.errors.borrow().len()
    }

    fn ends(&self) -> usize {
        *self.events.ends.borrow()
    }

    async fn wait_errors(&self, n: usize, ms: f64) -> bool {
        let start = now();
        while self.errors() < n {
            if now() - start > ms {
                return false;
            }
            sleep(2).await;
        }
        true
    }
}

/// `collection.watch(query, callback, onError, onEnd)` through the JavaScript method.
fn js_watch(
    c: ferrosync::Collection,
    query: &str,
    rec: &Recorder,
    h: &Handlers,
) -> Result<JsValue, JsValue> {
    let obj = JsValue::from(c);
    let watch: Function = Reflect::get(&obj, &"watch".into())?.unchecked_into();
    let args = Array::of4(
        &json(query),
        &rec.function(),
        h.on_error.as_ref(),
        h.on_end.as_ref(),
    );
    watch.apply(&obj, &args)
}

fn unsubscribe(sub: &JsValue) {
    let f: Function = prop(sub, "unsubscribe").unchecked_into();
    f.call0(sub).unwrap();
}

/// Replaces field `field` of the stored document `id` with an array nested `depth` deep, through
/// a raw readwrite transaction on `db` (bypassing ferrosync's validation, as a bug elsewhere or a
/// tampered profile would). ferrosync cannot read such a record back (nesting beyond its parser's
/// limit). `depth` 0 writes the number 1 instead (a repair).
async fn tamper(db: &web_sys::IdbDatabase, store: &str, id: &str, field: &str, depth: u32) {
    let f = Function::new_with_args(
        "db, store, id, field, depth",
        r#"return new Promise((resolve, reject) => {
            const tx = db.transaction(store, "readwrite");
            const st = tx.objectStore(store);
            const req = st.get(id);
            req.onsuccess = () => {
                const rec = req.result;
                let v = 1;
                for (let i = 0; i < depth; i++) v = [v];
                rec.doc[field] = v;
                st.put(rec);
            };
            tx.oncomplete = () => resolve();
            tx.onerror = () => reject(tx.error);
            tx.onabort = () => reject(tx.error);
        })"#,
    );
    let args = Array::of5(
        db,
        &store.into(),
        &id.into(),
        &field.into(),
        &JsValue::from(depth),
    );
    let p: Promise = f.apply(&JsValue::NULL, &args).unwrap().unchecked_into();
    JsFuture::from(p).await.expect("raw IndexedDB write");
}

#[wasm_bindgen_test]
async fn a_failed_rerun_goes_to_on_error_and_the_watch_keeps_running() {
    let name = unique("watch-errors");
    let db = open(&name, r#"{"items": {}}"#).await;
    let items = coll(&db, "items");
    bulk(
        &items,
        r#"[{"id": "a", "rank": 1}, {"id": "b", "rank": 2}, {"id": "c", "rank": 3}]"#,
    )
    .await;
    let rec = Recorder::new();
    let h = Handlers::new();
    let sub = js_watch(
        coll(&db, "items"),
        r#"{"orderBy": {"rank": "desc"}}"#,
        &rec,
        &h,
    )
    .unwrap();
    assert!(rec.wait_for(1, 5000.0).await, "no first result");
    assert_eq!(rec.last(), s(&["c", "b", "a"]));

    // Corrupt "b" behind ferrosync's back, then tell the live queries what a sync pull tells them
    // (ids changed, no version): the query runs again, reads "b", and fails.
    let raw = db
        .store()
        .raw_connection_for_test()
        .expect("open connection");
    tamper(&raw, "items", "b", "rank", 300).await;
    db.store().notify_changed("items", vec!["b".to_string()]);
    assert!(h.wait_errors(1, 5000.0).await, "onError was not called");
    {
        let errors = h.events.errors.borrow();
        let e = &errors[0];
        assert!(e.is_instance_of::<js_sys::Error>(), "not an Error: {e:?}");
        assert_eq!(code(e), "STORAGE_ERROR", "message: {}", message(e));
        assert!(
            message(e).contains("stored document"),
            "message: {}",
            message(e)
        );
    }
    assert_eq!(rec.count(), 1, "a failed run delivers no result");
    assert_eq!(h.ends(), 0);
    assert_eq!(
        prop(&sub, "active").as_bool(),
        Some(true),
        "the watch stops"
    );

    // Still running: a local write the window could patch re-runs in full (the failed run may
    // have missed a change), fails again while "b" is unreadable, and recovers once it is repaired.
    put(&items, r#"{"id": "d", "rank": 4}"#).await;
    assert!(
        h.wait_errors(2, 5000.0).await,
        "the next change did not re-run"
    );
    assert_eq!(rec.count(), 1);
    tamper(&raw, "items", "b", "rank", 0).await;
    put(&items, r#"{"id": "e", "rank": 0}"#).await;
    assert!(rec.wait_for(2, 5000.0).await, "no result after the repair");
    assert_eq!(
        rec.last(),
        s(&["d", "c", "a", "b", "e"]),
        "ties (rank 1) by id"
    );
    assert_eq!(h.errors(), 2);

    // Unsubscribed: no end is reported, for the application ended it itself.
    unsubscribe(&sub);
    db.close();
    sleep(20).await;
    assert_eq!(h.ends(), 0, "onEnd after unsubscribe()");
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn close_ends_every_watch_once_and_nothing_follows() {
    let name = unique("watch-close");
    let db = open(&name, r#"{"items": {}, "other": {}}"#).await;
    put(&coll(&db, "items"), r#"{"id": "a"}"#).await;
    let (r1, h1) = (Recorder::new(), Handlers::new());
    let (r2, h2) = (Recorder::new(), Handlers::new());
    let s1 = js_watch(coll(&db, "items"), "{}", &r1, &h1).unwrap();
    let s2 = js_watch(coll(&db, "other"), "{}", &r2, &h2).unwrap();
    assert!(r1.wait_for(1, 5000.0).await && r2.wait_for(1, 5000.0).await);

    // A write whose callback is still pending when close() comes: it must not be delivered.
    let pending = coll(&db, "items").put(json(r#"{"id": "b"}"#));
    db.close();
    // Ended by the time close() returns, each once.
    assert_eq!((h1.ends(), h2.ends()), (1, 1));
    assert_eq!(prop(&s1, "active").as_bool(), Some(false));
    assert_eq!(prop(&s2, "active").as_bool(), Some(false));
    let _ = JsFuture::from(pending).await;
    sleep(30).await;
    db.close();
    unsubscribe(&s1);
    assert_eq!((h1.ends(), h2.ends()), (1, 1), "ended twice");
    assert_eq!((r1.count(), r2.count()), (1, 1), "a callback after the end");
    assert_eq!(
        (h1.errors(), h2.errors()),
        (0, 0),
        "the end reported as an error"
    );
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn deleting_the_database_ends_its_watches() {
    let name = unique("watch-deleted");
    let db = open(&name, r#"{"items": {}}"#).await;
    let (rec, h) = (Recorder::new(), Handlers::new());
    let sub = js_watch(coll(&db, "items"), "{}", &rec, &h).unwrap();
    assert!(rec.wait_for(1, 5000.0).await);
    // Another part of the app (or another tab) deletes the database while it is open here.
    destroy(&name).await;
    assert_eq!(h.ends(), 1, "deleting the database did not end the watch");
    assert_eq!(prop(&sub, "active").as_bool(), Some(false));
    assert_eq!(h.errors(), 0);
    db.close();
    assert_eq!(h.ends(), 1);
}

#[wasm_bindgen_test]
async fn on_error_and_on_end_must_be_functions() {
    let name = unique("watch-args");
    let db = open(&name, r#"{"items": {}}"#).await;
    let obj = JsValue::from(coll(&db, "items"));
    let watch: Function = prop(&obj, "watch").unchecked_into();
    let noop = Function::new_no_args("");
    for (on_error, on_end, what) in [
        (JsValue::from(1), JsValue::UNDEFINED, "onError"),
        (JsValue::UNDEFINED, JsValue::from_str("x"), "onEnd"),
    ] {
        let args = Array::of4(&JsValue::UNDEFINED, &noop, &on_error, &on_end);
        let msg = throws(watch.apply(&obj, &args), "INVALID_QUERY");
        assert!(msg.contains(what), "{msg}");
    }
    // null and undefined mean none.
    let args = Array::of4(&JsValue::UNDEFINED, &noop, &JsValue::NULL, &JsValue::NULL);
    let sub = watch.apply(&obj, &args).unwrap();
    unsubscribe(&sub);
    db.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn an_on_end_callback_may_unsubscribe_other_watches_during_close() {
    let name = unique("watch-reentrant");
    let db = open(&name, r#"{"items": {}}"#).await;
    let subs: Rc<RefCell<Vec<JsValue>>> = Rc::default();
    let first_ends = Rc::new(RefCell::new(0));
    // The first watch's onEnd unsubscribes every watch (itself included), as an app tearing down
    // its views on close would; the registry must not be borrowed while it runs.
    let on_end = {
        let (subs, first_ends) = (subs.clone(), first_ends.clone());
        Closure::<dyn FnMut()>::new(move || {
            *first_ends.borrow_mut() += 1;
            for s in subs.borrow().iter() {
                unsubscribe(s);
            }
        })
    };
    let (r1, r2, h2) = (Recorder::new(), Recorder::new(), Handlers::new());
    let obj = JsValue::from(coll(&db, "items"));
    let watch: Function = prop(&obj, "watch").unchecked_into();
    let args = Array::of4(
        &JsValue::UNDEFINED,
        &r1.function(),
        &JsValue::UNDEFINED,
        on_end.as_ref(),
    );
    let s1 = watch.apply(&obj, &args).unwrap();
    let s2 = js_watch(coll(&db, "items"), "{}", &r2, &h2).unwrap();
    subs.borrow_mut().extend([s1.clone(), s2.clone()]);
    assert!(r1.wait_for(1, 5000.0).await && r2.wait_for(1, 5000.0).await);
    db.close();
    assert_eq!(*first_ends.borrow(), 1);
    assert_eq!(h2.ends(), 0, "ended after the application unsubscribed it");
    assert_eq!(prop(&s2, "active").as_bool(), Some(false));
    destroy(&name).await;
}
