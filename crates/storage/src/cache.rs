//! A least-recently-used map bounded by the bytes its entries are said to weigh.
//!
//! The registry's caches (parsed records, loaded space indexes) hold what is cheap to
//! read again from storage; this bound keeps what they hold from growing with the
//! number of spaces and versions ever seen.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

struct Entry<V> {
    value: V,
    weight: usize,
    /// When it was last used; its key in `order`.
    tick: u64,
}

pub(crate) struct WeightedLru<K, V> {
    budget: usize,
    weight: usize,
    tick: u64,
    entries: HashMap<K, Entry<V>>,
    /// Keys from least to most recently used.
    order: BTreeMap<u64, K>,
    /// Entries that must stay whatever their age (in use elsewhere).
    pinned: fn(&V) -> bool,
}

impl<K: Hash + Eq + Clone, V> WeightedLru<K, V> {
    pub fn new(budget: usize, pinned: fn(&V) -> bool) -> Self {
        Self { budget, weight: 0, tick: 0, entries: HashMap::new(), order: BTreeMap::new(), pinned }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value under `key`, marked as just used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let tick = self.next_tick();
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.tick);
        entry.tick = tick;
        self.order.insert(tick, key.clone());
        Some(&entry.value)
    }

    /// Stores a value (replacing any under the same key), then evicts the least recently
    /// used unpinned entries while the total is over budget. A value heavier than the
    /// whole budget is not kept at all unless pinned.
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        self.remove(&key);
        let tick = self.next_tick();
        self.order.insert(tick, key.clone());
        self.entries.insert(key, Entry { value, weight, tick });
        self.weight += weight;
        self.evict();
    }

    /// Changes the weight of an entry (its value grew or shrank), then evicts as needed.
    /// Sets an entry's weight; this counts as a use of it.
    pub fn reweigh(&mut self, key: &K, weight: usize) {
        let tick = self.next_tick();
        if let Some(entry) = self.entries.get_mut(key) {
            self.weight = self.weight - entry.weight + weight;
            entry.weight = weight;
            self.order.remove(&entry.tick);
            entry.tick = tick;
            self.order.insert(tick, key.clone());
            self.evict();
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.tick);
        self.weight -= entry.weight;
        Some(entry.value)
    }

    /// Removes every entry whose key `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let doomed: Vec<K> = self.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    fn evict(&mut self) {
        if self.weight <= self.budget {
            return;
        }
        let mut doomed = Vec::new();
        let mut excess = self.weight - self.budget;
        // The entry used last always stays: one larger than the whole budget (the index of
        // a very large space) would otherwise be dropped after every use and rebuilt for
        // every request. So what is held is at most the budget plus that one entry.
        let newest = self.order.values().next_back().cloned();
        for key in self.order.values() {
            if excess == 0 {
                break;
            }
            let entry = &self.entries[key];
            if (self.pinned)(&entry.value) || Some(key) == newest.as_ref() {
                continue;
            }
            excess = excess.saturating_sub(entry.weight);
            doomed.push(key.clone());
        }
        for key in doomed {
            self.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every key, without marking any as used.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// The total weight of what is held.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn evicts_least_recently_used_past_the_budget() {
        let mut lru = WeightedLru::new(10, |_: &u32| false);
        lru.insert("a", 1, 4);
        lru.insert("b", 2, 4);
        assert_eq!(lru.get(&"a"), Some(&1)); // b is now the oldest
        lru.insert("c", 3, 4);
        assert_eq!((lru.len(), lru.weight()), (2, 8));
        assert!(lru.get(&"b").is_none());
        assert!(lru.get(&"a").is_some() && lru.get(&"c").is_some());
        // Replacing keeps one entry, with the new weight.
        lru.insert("a", 5, 2);
        assert_eq!((lru.len(), lru.weight()), (2, 6));
        // Heavier than the whole budget: kept alone while it is the one used last, so that
        // using it again does not rebuild it; the next entry replaces it.
        lru.insert("huge", 9, 11);
        assert_eq!((lru.len(), lru.weight()), (1, 11));
        assert_eq!(lru.get(&"huge"), Some(&9));
        lru.insert("d", 4, 4);
        assert!(lru.get(&"huge").is_none());
        assert_eq!((lru.len(), lru.weight()), (1, 4));
    }

    #[test]
    fn pinned_entries_stay_and_reweighing_evicts_others() {
        let mut lru = WeightedLru::new(10, |v: &Arc<u32>| Arc::strong_count(v) > 1);
        let held = Arc::new(1);
        lru.insert("held", held.clone(), 6);
        lru.insert("free", Arc::new(2), 4);
        lru.reweigh(&"held", 8);
        assert!(lru.get(&"free").is_none(), "the unpinned entry made room");
        lru.insert("other", Arc::new(3), 5);
        assert!(lru.get(&"held").is_some(), "a pinned entry is never evicted");
        drop(held);
        lru.insert("next", Arc::new(4), 5);
        assert!(lru.get(&"held").is_none(), "once released it ages out like any other");
        lru.retain(|k| !["next", "other"].contains(k));
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.weight(), 0);
    }
}
