//! A small map from a name (a collection's, mostly) to a value, kept as a list.
//!
//! An app declares a handful of collections, so a scan finds a name as fast as a tree or a hash
//! would. What a list saves is code: every `BTreeMap` or `HashMap` type is compiled on its own,
//! about a kilobyte of the browser module each, while this one is a few small loops.

/// Names and their values, in the order the names were first inserted; each name once.
#[derive(Debug, Clone)]
pub struct ByName<V>(Vec<(String, V)>);

impl<V> Default for ByName<V> {
    fn default() -> Self {
        ByName(Vec::new())
    }
}

impl<V> ByName<V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(n, _)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name`'s value, returning the one it replaces.
    pub fn insert(&mut self, name: impl Into<String>, value: V) -> Option<V> {
        let name = name.into();
        match self.get_mut(&name) {
            Some(old) => Some(std::mem::replace(old, value)),
            None => {
                self.0.push((name, value));
                None
            }
        }
    }

    /// Takes `name` out (the others keep their order).
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let at = self.position(name)?;
        Some(self.0.remove(at).1)
    }

    /// Takes every name out.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, V)> + '_ {
        self.0.drain(..)
    }

    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.0.into_iter().map(|(_, v)| v)
    }

    /// `name`'s value, inserted as `V::default()` when absent.
    pub fn entry_or_default(&mut self, name: &str) -> &mut V
    where
        V: Default,
    {
        let at = match self.position(name) {
            Some(at) => at,
            None => {
                self.0.push((name.to_string(), V::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(n, _)| n)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.0.iter_mut().map(|(n, v)| (&*n, v))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Equal when the same names have equal values, in whatever order they were inserted (as maps).
impl<V: PartialEq> PartialEq for ByName<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(n, v)| other.get(n) == Some(v))
    }
}

impl<'a, V> IntoIterator for &'a ByName<V> {
    type Item = (&'a String, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Behaves as a map: after any inserts and defaults, every name holds what a BTreeMap holds.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((0u8..5, any::<bool>(), 0u32..100), 0..40)) {
            let mut got: ByName<u32> = ByName::new();
            let mut want: BTreeMap<String, u32> = BTreeMap::new();
            for (name, insert, v) in ops {
                let name = format!("c{name}");
                if v % 7 == 0 {
                    prop_assert_eq!(got.remove(&name), want.remove(&name));
                } else if insert {
                    prop_assert_eq!(got.insert(name.clone(), v), want.insert(name, v));
                } else {
                    *got.entry_or_default(&name) += v;
                    *want.entry(name).or_default() += v;
                }
            }
            prop_assert_eq!(got.len(), want.len());
            for (n, v) in &want {
                prop_assert_eq!(got.get(n), Some(v));
                prop_assert!(got.contains_key(n));
            }
            prop_assert!(!got.contains_key("other"));
            let mut names: Vec<&String> = got.keys().collect();
            names.sort();
            prop_assert_eq!(names, want.keys().collect::<Vec<_>>());
        }
    }

    #[test]
    fn equal_whatever_the_insertion_order() {
        let a: ByName<u8> =
            [("x", 1), ("y", 2)]
                .into_iter()
                .fold(ByName::new(), |mut m, (n, v)| {
                    m.insert(n, v);
                    m
                });
        let mut b = ByName::new();
        b.insert("y", 2);
        b.insert("x", 1);
        assert_eq!(a, b);
        b.insert("x", 3);
        assert_ne!(a, b);
    }
}
