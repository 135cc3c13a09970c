//! [`SpaceSaving`]: the Space-Saving sketch (Metwally, Agrawal, El Abbadi, 2005) over an
//! indexed min-heap, with a payload per monitored key.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// One monitored key: its estimated weight, the most that estimate may exceed the true
/// weight, and the payload gathered since the key was last taken into the sketch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counter<K, V> {
    /// The key.
    pub key: K,
    /// Estimated weight: never below the true weight of the key.
    pub count: u64,
    /// Most the estimate may exceed the true weight: `count - error <= true <= count`.
    pub error: u64,
    /// What the caller recorded for this key since it was (last) taken into the sketch.
    pub payload: V,
}

/// The Space-Saving sketch with at most `capacity` counters.
///
/// # Contract
/// After any sequence of [`observe`](Self::observe) calls whose weights add up to `N`:
/// - every key whose true weight exceeds `N / capacity` is monitored;
/// - for every monitored key, `count - error <= true weight <= count`;
/// - the counts of all counters add up to `N`.
///
/// An observation of a monitored key costs a hash lookup and a sift of the heap (usually none
/// or one swap); one of a new key, when the sketch is full, replaces the minimum (the heap's
/// root) in O(log capacity). Not synchronised: [`TopTenants`](super::TopTenants) shards it
/// behind mutexes.
#[derive(Debug, Clone)]
pub struct SpaceSaving<K, V, S = foldhash::fast::RandomState> {
    capacity: usize,
    /// Min-heap on `count`.
    heap: Vec<Counter<K, V>>,
    /// Where each monitored key sits in `heap`.
    index: HashMap<K, usize, S>,
}

impl<K: Hash + Eq + Clone, V> SpaceSaving<K, V> {
    /// A sketch of `capacity` counters (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            heap: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, Default::default()),
        }
    }
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher> SpaceSaving<K, V, S> {
    /// Most counters the sketch keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Counters in use.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no key is monitored.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds `weight` to `key`, then lets `update` record into its payload.
    ///
    /// A key not monitored gets a fresh payload from `init`: in a free counter, or in the
    /// minimum's, whose count (plus `weight`) it inherits as its estimate and whose count
    /// becomes its error bound. The evicted key's payload is dropped.
    pub fn observe(
        &mut self,
        key: &K,
        weight: u64,
        init: impl FnOnce() -> V,
        update: impl FnOnce(&mut V),
    ) {
        let at = if let Some(&at) = self.index.get(key) {
            let counter = &mut self.heap[at];
            counter.count = counter.count.saturating_add(weight);
            update(&mut counter.payload);
            at
        } else if self.heap.len() < self.capacity {
            let mut payload = init();
            update(&mut payload);
            self.heap.push(Counter {
                key: key.clone(),
                count: weight,
                error: 0,
                payload,
            });
            let at = self.heap.len() - 1;
            self.index.insert(key.clone(), at);
            self.sift_up(at)
        } else {
            let mut payload = init();
            update(&mut payload);
            let root = &mut self.heap[0];
            let floor = root.count;
            let evicted = std::mem::replace(
                root,
                Counter {
                    key: key.clone(),
                    count: floor.saturating_add(weight),
                    error: floor,
                    payload,
                },
            );
            self.index.remove(&evicted.key);
            self.index.insert(key.clone(), 0);
            0
        };
        self.sift_down(at);
    }

    /// The counter of `key`, when it is monitored.
    pub fn get(&self, key: &K) -> Option<&Counter<K, V>> {
        self.index.get(key).and_then(|&at| self.heap.get(at))
    }

    /// Every counter, in no particular order.
    pub fn counters(&self) -> impl Iterator<Item = &Counter<K, V>> {
        self.heap.iter()
    }

    /// Applies `scale` to every count and error bound and `scale_payload` to every payload,
    /// then drops counters whose count reached zero. `scale` must be monotonic (as halving
    /// is), so the heap order holds; counts and errors are clamped so `error <= count`.
    pub fn rescale(&mut self, scale: impl Fn(u64) -> u64, mut scale_payload: impl FnMut(&mut V)) {
        for counter in &mut self.heap {
            counter.count = scale(counter.count);
            counter.error = scale(counter.error).min(counter.count);
            scale_payload(&mut counter.payload);
        }
        // O(capacity), once per window and shard, never per request.
        self.heap.retain(|counter| counter.count > 0);
        self.rebuild();
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.index.clear();
    }

    fn rebuild(&mut self) {
        for at in (0..self.heap.len() / 2).rev() {
            self.sift_down(at);
        }
        self.index.clear();
        for (at, counter) in self.heap.iter().enumerate() {
            self.index.insert(counter.key.clone(), at);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for at in [a, b] {
            if let Some(slot) = self.index.get_mut(&self.heap[at].key) {
                *slot = at;
            }
        }
    }

    fn sift_up(&mut self, mut at: usize) -> usize {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.heap[parent].count <= self.heap[at].count {
                break;
            }
            self.swap(parent, at);
            at = parent;
        }
        at
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let left = 2 * at + 1;
            let right = left + 1;
            let mut smallest = at;
            if left < self.heap.len() && self.heap[left].count < self.heap[smallest].count {
                smallest = left;
            }
            if right < self.heap.len() && self.heap[right].count < self.heap[smallest].count {
                smallest = right;
            }
            if smallest == at {
                return;
            }
            self.swap(at, smallest);
            at = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sketch: &mut SpaceSaving<u32, u32>, key: u32) {
        sketch.observe(&key, 1, || 0, |n| *n += 1);
    }

    #[test]
    fn a_full_sketch_replaces_the_minimum_and_inherits_its_count() {
        let mut sketch = SpaceSaving::new(2);
        for key in [1, 1, 1, 2, 3] {
            count(&mut sketch, key);
        }
        assert_eq!(sketch.len(), 2);
        assert!(sketch.get(&2).is_none(), "the minimum (2, once) gave way");
        let three = sketch.get(&3).map(|c| (c.count, c.error, c.payload));
        assert_eq!(
            three,
            Some((2, 1, 1)),
            "count 1 + 1, error 1, fresh payload"
        );
        assert_eq!(sketch.get(&1).map(|c| c.count), Some(3));
    }

    #[test]
    fn rescaling_drops_counters_that_reach_zero_and_keeps_the_index() {
        let mut sketch = SpaceSaving::new(4);
        for key in [1, 1, 1, 1, 2, 3, 3] {
            count(&mut sketch, key);
        }
        sketch.rescale(|n| n / 2, |p| *p /= 2);
        assert_eq!(sketch.len(), 2);
        assert!(sketch.get(&2).is_none());
        assert_eq!(sketch.get(&1).map(|c| c.count), Some(2));
        count(&mut sketch, 3);
        assert_eq!(sketch.get(&3).map(|c| c.count), Some(2));
    }
}
