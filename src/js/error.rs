//! The one place where an [`Error`] becomes what JavaScript sees: an `Error` whose `message` says
//! what went wrong and whose `code` is stable (`err.code === "INVALID_DOCUMENT"`).

use js_sys::{Promise, Reflect};
use wasm_bindgen::JsValue;

use crate::error::Error;

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let err = js_sys::Error::new(&e.to_string());
        let _ = Reflect::set(
            &err,
            &JsValue::from_str("code"),
            &JsValue::from_str(e.code()),
        );
        err.into()
    }
}

/// A promise rejected with `e` (argument errors reject like every other failure).
pub(super) fn reject(e: Error) -> Promise {
    Promise::reject(&JsValue::from(e))
}
