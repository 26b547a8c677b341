//! The timer queue: entries' next deadlines, earliest first.
//!
//! Deadlines are buckets of an ordered map, each holding the entries due then in the order
//! their deadlines were set (so entries added together fire in the order they were added).
//! Many entries of a scheduler usually share their deadlines (10,000 entries every second
//! share one bucket), so taking the earliest costs O(1) and setting a deadline O(log b), `b`
//! the number of distinct deadlines, where a binary heap of all entries cost O(log n) for
//! both, with comparisons of whole items: it was most of the timer's work before a large
//! slot.
//!
//! Deletion is lazy: setting a deadline adds a new item and remembers it as the entry's live
//! one; removing forgets it. Stale items are dropped when they reach the front, and the
//! buckets are rebuilt from the live map when stale items outnumber live ones. Set, remove
//! and fire cost O(log b) amortized.

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::Timestamp;

use crate::entry::{EntryId, IdHasher};

/// Deadlines keyed by entry; the earliest first. Ties go in the order their deadlines were set.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    /// Each deadline's items: (entry, generation), in the order they were set.
    buckets: BTreeMap<Timestamp, VecDeque<(EntryId, u64)>>,
    /// Items in `buckets`, live or stale.
    items: usize,
    /// Each entry's live deadline and the generation of its item in `buckets`.
    live: HashMap<EntryId, (Timestamp, u64), IdHasher>,
    next_gen: u64,
}

impl TimerHeap {
    /// Entries with a deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The earliest live deadline (dropping stale items on the way).
    pub fn peek(&mut self) -> Option<(Timestamp, EntryId)> {
        loop {
            let mut first = self.buckets.first_entry()?;
            let at = *first.key();
            let bucket = first.get_mut();
            while let Some(&(id, gen)) = bucket.front() {
                if self.live.get(&id) == Some(&(at, gen)) {
                    return Some((at, id));
                }
                bucket.pop_front();
                self.items -= 1;
            }
            first.remove();
        }
    }

    /// Sets (or replaces) the deadline of `id`.
    pub fn set(&mut self, id: EntryId, at: Timestamp) {
        self.next_gen += 1;
        self.live.insert(id, (at, self.next_gen));
        self.buckets.entry(at).or_default().push_back((id, self.next_gen));
        self.items += 1;
        self.compact();
    }

    /// Removes `id`'s deadline; returns it if there was one.
    pub fn remove(&mut self, id: EntryId) -> Option<Timestamp> {
        let (at, _) = self.live.remove(&id)?;
        self.compact();
        Some(at)
    }

    /// Rebuilds the buckets from the live items when stale ones outnumber them (ties then go
    /// in the order of their generations, the order they were set).
    fn compact(&mut self) {
        if self.items > 2 * self.live.len() + 1024 {
            let mut items: Vec<(Timestamp, u64, EntryId)> =
                self.live.iter().map(|(&id, &(at, gen))| (at, gen, id)).collect();
            items.sort_unstable();
            self.buckets.clear();
            for (at, gen, id) in items {
                self.buckets.entry(at).or_default().push_back((id, gen));
            }
            self.items = self.live.len();
        }
    }

    /// Removes and returns the earliest deadline if it is at or before `now`.
    #[cfg(test)]
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, EntryId)> {
        let (at, id) = self.peek()?;
        (at <= now).then(|| {
            self.remove(id);
            (at, id)
        })
    }

    /// Checks that every live deadline is in the buckets exactly once and that stale items
    /// stay bounded; a description of the first fault.
    pub fn check(&self) -> Result<(), String> {
        let mut found = 0;
        let mut items = 0;
        for (at, bucket) in &self.buckets {
            for (id, gen) in bucket {
                items += 1;
                if self.live.get(id) == Some(&(*at, *gen)) {
                    found += 1;
                }
            }
        }
        if found != self.live.len() {
            return Err(format!("{} live deadlines, {found} in the buckets", self.live.len()));
        }
        if items != self.items {
            return Err(format!("{items} items counted as {}", self.items));
        }
        if items > 2 * self.live.len() + 1024 {
            return Err(format!("{items} items for {} live ones", self.live.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn pops_in_order_after_updates_and_removals() {
        let mut h = TimerHeap::default();
        for (id, at) in [(1, 50), (2, 10), (3, 30), (4, 40), (5, 20)] {
            h.set(EntryId(id), ts(at));
        }
        h.set(EntryId(4), ts(5)); // earlier
        h.set(EntryId(2), ts(60)); // later
        assert_eq!(h.remove(EntryId(3)), Some(ts(30)));
        assert_eq!(h.remove(EntryId(3)), None);
        h.check().unwrap();
        let mut order = Vec::new();
        while let Some((at, id)) = h.pop_due(ts(100)) {
            order.push((id.0, at.as_second()));
        }
        assert_eq!(order, [(4, 5), (5, 20), (1, 50), (2, 60)]);
        assert!(h.pop_due(ts(100)).is_none());
    }

    #[test]
    fn ties_go_in_the_order_they_were_set() {
        let mut h = TimerHeap::default();
        for id in [3, 1, 2] {
            h.set(EntryId(id), ts(10));
        }
        h.set(EntryId(1), ts(10)); // set again: now after the others
        h.check().unwrap();
        let order: Vec<u64> =
            std::iter::from_fn(|| h.pop_due(ts(10)).map(|(_, id)| id.0)).collect();
        assert_eq!(order, [3, 2, 1]);
    }

    #[test]
    fn not_due_is_not_popped() {
        let mut h = TimerHeap::default();
        h.set(EntryId(1), ts(10));
        assert!(h.pop_due(ts(9)).is_none());
        assert_eq!(h.pop_due(ts(10)), Some((ts(10), EntryId(1))));
    }

    #[test]
    fn stale_items_are_compacted_away() {
        let mut h = TimerHeap::default();
        for id in 0..5000 {
            h.set(EntryId(id), ts(id as i64));
            h.set(EntryId(id), ts(id as i64 + 1)); // re-timed: one stale item each
        }
        for id in 10..5000 {
            h.remove(EntryId(id));
        }
        h.check().unwrap();
        assert!(h.items <= 2 * 10 + 1024, "{} items", h.items);
        assert_eq!(h.len(), 10);
        assert_eq!(h.peek(), Some((ts(1), EntryId(0))));
    }
}
