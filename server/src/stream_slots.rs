//! The caps on open event streams (`GET /v1/events`), in all and per namespace: each stream
//! holds a slot for as long as it is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// Counts open event streams, in all and per namespace, against their caps.
pub struct StreamSlots {
    total: usize,
    per_namespace: usize,
    open: Arc<Mutex<(usize, HashMap<String, usize>)>>,
}

/// One open stream's place; dropping it frees the place.
pub struct StreamSlot {
    namespace: String,
    open: Arc<Mutex<(usize, HashMap<String, usize>)>>,
}

impl StreamSlots {
    pub fn new(total: usize, per_namespace: usize) -> StreamSlots {
        StreamSlots {
            total,
            per_namespace,
            open: Arc::default(),
        }
    }

    /// A place for one more stream of `namespace`: 429 when the namespace is at its cap, 503
    /// when the server is.
    pub fn take(&self, namespace: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_ns) = &mut *open;
        let mine = by_ns.get(namespace).copied().unwrap_or(0);
        if mine >= self.per_namespace {
            return Err(ApiError::TooManyStreams(format!(
                "this namespace already has {mine} event streams open (limit {}); close one",
                self.per_namespace
            )));
        }
        if *all >= self.total {
            return Err(ApiError::Busy(format!(
                "the server has {all} event streams open, its limit; retry later"
            )));
        }
        *all += 1;
        *by_ns.entry(namespace.to_string()).or_insert(0) += 1;
        Ok(StreamSlot {
            namespace: namespace.to_string(),
            open: self.open.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_ns) = &mut *open;
        *all -= 1;
        if let Some(n) = by_ns.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                by_ns.remove(&self.namespace);
            }
        }
    }
}
