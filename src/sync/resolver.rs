//! A JavaScript conflict resolver `(local, remote) => doc | null` (or a promise of it) as core's
//! [`CustomResolver`]. The engine calls it between store transactions, never inside one, so the
//! function may take its time (even ask the user).

use std::rc::Rc;

use ferrosync_core::document;
use ferrosync_core::sync::{with_timeout, Conflict, CustomResolver, Sleep};
use js_sys::{Function, Promise};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

fn to_js(doc: &Option<Value>) -> JsValue {
    match doc {
        None => JsValue::NULL,
        Some(v) => serde_json::to_string(v)
            .ok()
            .and_then(|t| js_sys::JSON::parse(&t).ok())
            .unwrap_or(JsValue::NULL),
    }
}

fn message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return format!("it threw: {}", String::from(err.message()));
    }
    format!(
        "it threw {}",
        e.as_string()
            .unwrap_or_else(|| "a non-Error value".to_string())
    )
}

/// Checks the resolver's answer: `null` (delete) or a JSON document (its `id` is added if absent;
/// core refuses a different one).
fn from_js(out: &JsValue) -> Result<Option<Value>, String> {
    if out.is_null() {
        return Ok(None);
    }
    if out.is_undefined() {
        return Err("it returned undefined; return the document to keep, or null to delete".into());
    }
    let proto: JsValue = js_sys::Object::get_prototype_of(out).into();
    let object_proto: JsValue = js_sys::Object::get_prototype_of(&js_sys::Object::new()).into();
    let is_plain = out.is_object()
        && !js_sys::Array::is_array(out)
        && (proto.is_null() || proto == object_proto);
    if !is_plain {
        return Err("it must return a plain object (the document) or null".into());
    }
    let text = js_sys::JSON::stringify(out)
        .map_err(|e| format!("its result is not JSON data ({})", message(&e)))?;
    let text = text.as_string().unwrap_or_default();
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("its result is not JSON data: {e}"))?;
    Ok(Some(value))
}

fn validate(id: &str, value: Option<Value>) -> Result<Option<Value>, String> {
    let Some(mut v) = value else { return Ok(None) };
    if let Value::Object(m) = &mut v {
        m.entry("id")
            .or_insert_with(|| Value::String(id.to_string()));
    }
    document::validate(&v).map_err(|e| format!("it returned an invalid document: {e}"))?;
    Ok(Some(v))
}

/// Wraps `f` for the engine, bounded by core's [`with_timeout`]: a promise that does not settle
/// within `timeout_ms` fails (the engine then sets the document aside), so one stuck resolver never
/// stalls sync.
pub fn js_resolver(f: Function, timeout_ms: f64) -> CustomResolver {
    let app: CustomResolver = Rc::new(move |c: Conflict| {
        let f = f.clone();
        Box::pin(async move {
            let out = f
                .call2(&JsValue::NULL, &to_js(&c.local), &to_js(&c.remote))
                .map_err(|e| message(&e))?;
            let out = if out.has_type::<Promise>() || is_thenable(&out) {
                JsFuture::from(Promise::resolve(&out))
                    .await
                    .map_err(|e| format!("its promise was rejected ({})", message(&e)))?
            } else {
                out
            };
            validate(&c.id, from_js(&out)?)
        })
    });
    let sleep: Sleep = Rc::new(|ms| Box::pin(crate::env::sleep(ms as f64)));
    with_timeout(app, timeout_ms.round() as u64, sleep)
}

fn is_thenable(v: &JsValue) -> bool {
    v.is_object()
        && js_sys::Reflect::get(v, &JsValue::from_str("then")).is_ok_and(|t| t.is_function())
}
