//! The one sort every caller in the module shares.
//!
//! The standard library's sorts are compiled again for every element type and comparator they are
//! called with: 1-3 KB of WebAssembly each, about 22 KB for a dozen call sites in the browser
//! module. Here only a list of positions is sorted, by one comparator type, with a merge sort of
//! our own (smaller than the standard unstable sort compiled once); a caller adds a small
//! permutation of its own elements.
//!
//! The merge sort does at most `n log n` comparisons, each often one of two JSON values, and one
//! pass for input already in order (a result read in index order). Std's own size-optimized
//! variant (`optimize_for_size`) was measured and not used: a heapsort, twice the comparisons.

use std::cmp::Ordering;

/// Sorts `v` by `cmp`, stably: elements that compare equal keep their order.
pub fn sort_by<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let order = order_of(v.len(), &|a, b| cmp(&v[a], &v[b]));
    permute(v, order);
}

/// Sorts `v` by the key `key` gives, stably.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// The positions `0..n` in the order `cmp` gives them, ties by position (a stable order): a
/// bottom-up merge sort, after one pass that returns input already in order as it is. Not
/// generic: compiled once for every caller.
#[inline(never)]
fn order_of(n: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if (1..n).all(|i| cmp(i - 1, i) != Ordering::Greater) {
        return order;
    }
    let mut merged = vec![0; n];
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo < n {
            let mid = lo.saturating_add(width).min(n);
            let hi = mid.saturating_add(width).min(n);
            merge(&order[lo..mid], &order[mid..hi], &mut merged[lo..hi], cmp);
            lo = hi;
        }
        std::mem::swap(&mut order, &mut merged);
        width = width.saturating_mul(2);
    }
    order
}

/// Merges two ordered runs into `out`; on ties the first run's element comes first.
fn merge(a: &[usize], b: &[usize], out: &mut [usize], cmp: &dyn Fn(usize, usize) -> Ordering) {
    let (mut i, mut j) = (0, 0);
    for slot in out.iter_mut() {
        let first = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => cmp(y, x) != Ordering::Less,
            (Some(_), None) => true,
            _ => false,
        };
        if first {
            *slot = a[i];
            i += 1;
        } else {
            *slot = b[j];
            j += 1;
        }
    }
}

/// Moves `v[order[i]]` to `i` for every `i`, in place, following each cycle of the permutation.
fn permute<T>(v: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for start in 0..v.len() {
        let mut i = start;
        while order[i] != DONE {
            let from = order[i];
            order[i] = DONE;
            if from == start {
                break;
            }
            v.swap(i, from);
            i = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Equals the standard stable sort, ties included (the second field tells equal keys apart).
        #[test]
        fn equals_the_standard_stable_sort(v in prop::collection::vec((0u8..6, any::<u16>()), 0..200)) {
            let mut want = v.clone();
            want.sort_by_key(|x| x.0);
            let mut got = v.clone();
            sort_by(&mut got, |a, b| a.0.cmp(&b.0));
            prop_assert_eq!(&got, &want);
            let mut got = v;
            sort_by_key(&mut got, |x| x.0);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn input_in_order_costs_one_pass_and_long_inputs_sort() {
        let count = std::cell::Cell::new(0usize);
        let mut v: Vec<u32> = (0..5000).collect();
        sort_by(&mut v, |a, b| {
            count.set(count.get() + 1);
            a.cmp(b)
        });
        assert_eq!(count.get(), 4999);
        assert!(v.is_sorted());
        // Reversed, and a longer mixed input with many ties: as the standard stable sort.
        let mut v: Vec<(u32, u32)> = (0..5000).rev().map(|i| (i / 3, i)).collect();
        let mut want = v.clone();
        want.sort_by_key(|x| x.0);
        sort_by_key(&mut v, |x| x.0);
        assert_eq!(v, want);
        let mut v: Vec<(u32, u32)> = (0..4099u32)
            .map(|i| (i.wrapping_mul(2654435761) % 97, i))
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|x| x.0);
        sort_by(&mut v, |a, b| a.0.cmp(&b.0));
        assert_eq!(v, want);
    }

    #[test]
    fn moves_elements_that_are_not_copy() {
        let mut v: Vec<String> = ["d", "a", "c", "b", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_by(&mut v, |a, b| a.cmp(b));
        assert_eq!(v, ["a", "a", "b", "c", "d"]);
    }
}
