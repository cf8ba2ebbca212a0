//! Numbers in documents come back exactly as they were pushed (issue 13 item 9), on SQLite and on
//! PostgreSQL (documents are stored as JSON text, `TEXT` columns on both: no `jsonb` rewriting of
//! numbers). Before serde_json's `float_roundtrip` feature, the server's parse of a push changed
//! about one full-precision double in ten by one unit in the last place.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn random_doubles(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = vec![0.9856906946328695, 5e-324, f64::MAX, 1e21];
    while out.len() < n {
        let bits = next();
        let x = if out.len().is_multiple_of(2) {
            f64::from_bits(bits)
        } else {
            (bits >> 11) as f64 / (1u64 << 53) as f64
        };
        if x.is_finite() {
            out.push(x);
        }
    }
    out
}

async fn doubles_and_integers_round_trip_exactly(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let tok = token("numbers");
    let ints: Vec<i64> = vec![(1 << 53) - 1, 1 << 53, -(1 << 53), 123_456_789_012_345];
    let mut changes = Vec::new();
    let mut sent = Vec::new();
    for i in 0..5 {
        let xs = random_doubles(i, 1_000);
        let id = format!("n{i}");
        changes.push(put(
            "nums",
            &id,
            &hlc(now_ms(), i as u32, "a"),
            json!({ "id": id, "xs": xs, "ints": ints, "nested": { "x": xs[7] } }),
        ));
        sent.push(xs);
    }
    let (st, body) = srv.push(&tok, push_body("a", changes)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (pulled, _) = srv.pull_all(&tok, None).await;
    assert_eq!(pulled.len(), 5);
    let mut off = 0;
    let mut example = None;
    for c in &pulled {
        let i: usize = c["id"].as_str().unwrap()[1..].parse().unwrap();
        let doc = &c["doc"];
        for (x, v) in sent[i].iter().zip(doc["xs"].as_array().unwrap()) {
            let y = v.as_f64().unwrap();
            if x.to_bits() != y.to_bits() {
                off += 1;
                example.get_or_insert((*x, y));
            }
        }
        assert_eq!(
            doc["nested"]["x"].as_f64().unwrap().to_bits(),
            sent[i][7].to_bits()
        );
        let back: Vec<Value> = doc["ints"].as_array().unwrap().clone();
        assert_eq!(back, ints.iter().map(|n| json!(n)).collect::<Vec<_>>());
    }
    assert_eq!(off, 0, "{off} of 5000 doubles changed, e.g. {example:?}");
    srv.finish().await;
}

both_backends!(doubles_and_integers_round_trip_exactly);
