//! The `k` smallest items of a stream under a comparator, in order, holding at most `k` of them:
//! an unindexed `orderBy` with a `limit` sorts a page, not every match.

use std::cmp::Ordering;

/// The `k` smallest of `items` by `cmp`, sorted; equal items keep no particular order (callers
/// break ties themselves, as queries do by id). O(n log k) time, O(k) memory.
pub fn top_k<T, I, C>(items: I, k: usize, cmp: C) -> Vec<T>
where
    I: IntoIterator<Item = T>,
    C: Fn(&T, &T) -> Ordering,
{
    if k == 0 {
        return Vec::new();
    }
    // A max-heap of the best k so far: heap[0] is the worst kept item.
    let mut heap: Vec<T> = Vec::new();
    for item in items {
        if heap.len() < k {
            heap.push(item);
            sift_up(&mut heap, &cmp);
        } else if cmp(&item, &heap[0]) == Ordering::Less {
            heap[0] = item;
            sift_down(&mut heap, 0, &cmp);
        }
    }
    crate::sort::sort_by(&mut heap, cmp);
    heap
}

fn sift_up<T, C: Fn(&T, &T) -> Ordering>(heap: &mut [T], cmp: &C) {
    let mut i = heap.len() - 1;
    while i > 0 {
        let parent = (i - 1) / 2;
        if cmp(&heap[i], &heap[parent]) != Ordering::Greater {
            break;
        }
        heap.swap(i, parent);
        i = parent;
    }
}

fn sift_down<T, C: Fn(&T, &T) -> Ordering>(heap: &mut [T], mut i: usize, cmp: &C) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut top = i;
        if l < heap.len() && cmp(&heap[l], &heap[top]) == Ordering::Greater {
            top = l;
        }
        if r < heap.len() && cmp(&heap[r], &heap[top]) == Ordering::Greater {
            top = r;
        }
        if top == i {
            return;
        }
        heap.swap(i, top);
        i = top;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_sort_and_take(v in prop::collection::vec(-20i32..20, 0..60), k in 0usize..70) {
            let mut want = v.clone();
            want.sort();
            want.truncate(k);
            prop_assert_eq!(top_k(v, k, |a, b| a.cmp(b)), want);
        }
    }
}
