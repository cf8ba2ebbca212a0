//! The one sort every caller in the module shares.
//!
//! The standard library's sorts are compiled again for every element type and comparator they are
//! called with: 1-3 KB of WebAssembly each, about 22 KB for a dozen call sites in the browser
//! module. Here only a list of positions is sorted, by one comparator type, so the standard sort is
//! compiled once; a caller adds a small permutation of its own elements.

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

/// The positions `0..n` in the order `cmp` gives them, ties by position (so the unstable sort
/// orders as a stable one would). Not generic: the standard sort is compiled for this call alone.
#[inline(never)]
fn order_of(n: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| cmp(a, b).then(a.cmp(&b)));
    order
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
    fn moves_elements_that_are_not_copy() {
        let mut v: Vec<String> = ["d", "a", "c", "b", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_by(&mut v, |a, b| a.cmp(b));
        assert_eq!(v, ["a", "a", "b", "c", "d"]);
    }
}
