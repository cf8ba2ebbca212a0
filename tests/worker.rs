//! The core suite again, in a dedicated worker (no `window`: the library must use the global scope):
//! `CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test worker`

mod common;

use common::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn worker_crud_and_generated_ids() {
    assert!(js_sys::Reflect::get(&js_sys::global(), &"window".into())
        .unwrap()
        .is_undefined());
    crud_and_ids().await;
}

#[wasm_bindgen_test]
async fn worker_every_query_operator_with_index_and_scan() {
    queries_with_and_without_indexes().await;
}

#[wasm_bindgen_test]
async fn worker_invalid_documents_are_rejected() {
    invalid_documents_write_nothing().await;
}

#[wasm_bindgen_test]
async fn worker_invalid_queries_are_rejected() {
    invalid_queries().await;
}

#[wasm_bindgen_test]
async fn worker_bulk_put_is_all_or_nothing() {
    bulk_put_all_or_nothing().await;
}

#[wasm_bindgen_test]
async fn worker_outbox_and_hlc() {
    outbox_and_hlc().await;
}

#[wasm_bindgen_test]
async fn worker_watch_semantics() {
    watch_semantics().await;
}

#[wasm_bindgen_test]
async fn worker_two_instances() {
    two_instances().await;
}

#[wasm_bindgen_test]
async fn worker_live_results_always_equal_find() {
    live_results_equal_find().await;
}

#[wasm_bindgen_test]
async fn worker_watch_results_never_alias_the_callers_objects() {
    watch_results_are_not_the_callers_objects().await;
}

#[wasm_bindgen_test]
async fn worker_reconnects() {
    reconnects_when_the_browser_closes_the_connection().await;
}
