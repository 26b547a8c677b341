//! An indexed binary min-heap of deadlines: push, remove and update by entry in O(log n).

use std::collections::HashMap;

use jiff::Timestamp;

use crate::EntryId;

/// Deadlines keyed by entry; the earliest on top. Ties break by entry id (older first).
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    items: Vec<(Timestamp, EntryId)>,
    /// Where each entry sits in `items`.
    index: HashMap<EntryId, usize>,
}

impl TimerHeap {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn peek(&self) -> Option<(Timestamp, EntryId)> {
        self.items.first().copied()
    }

    /// Sets (or replaces) the deadline of `id`.
    pub fn set(&mut self, id: EntryId, at: Timestamp) {
        match self.index.get(&id).copied() {
            Some(i) => {
                let old = self.items[i].0;
                self.items[i].0 = at;
                if at < old {
                    self.up(i);
                } else {
                    self.down(i);
                }
            }
            None => {
                self.items.push((at, id));
                let i = self.items.len() - 1;
                self.index.insert(id, i);
                self.up(i);
            }
        }
    }

    /// Removes `id`'s deadline; returns it if there was one.
    pub fn remove(&mut self, id: EntryId) -> Option<Timestamp> {
        let i = self.index.remove(&id)?;
        let last = self.items.len() - 1;
        self.items.swap(i, last);
        let (at, _) = self.items.pop()?;
        if i < self.items.len() {
            self.index.insert(self.items[i].1, i);
            self.down(i);
            self.up(i);
        }
        Some(at)
    }

    /// Removes and returns the earliest deadline if it is at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, EntryId)> {
        let (at, id) = self.peek()?;
        (at <= now).then(|| {
            self.remove(id);
            (at, id)
        })
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.items[a] < self.items[b]
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.items.swap(a, b);
        self.index.insert(self.items[a].1, a);
        self.index.insert(self.items[b].1, b);
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.items.len() && self.less(l, least) {
                least = l;
            }
            if r < self.items.len() && self.less(r, least) {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }

    /// Checks the heap property and the index; a description of the first fault.
    pub fn check(&self) -> Result<(), String> {
        if self.index.len() != self.items.len() {
            return Err(format!("{} items, {} indexed", self.items.len(), self.index.len()));
        }
        for (i, (_, id)) in self.items.iter().enumerate() {
            if self.index.get(id) != Some(&i) {
                return Err(format!("entry {id:?} at {i} indexed at {:?}", self.index.get(id)));
            }
            if i > 0 && self.less(i, (i - 1) / 2) {
                return Err(format!("item {i} is earlier than its parent"));
            }
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
    fn not_due_is_not_popped() {
        let mut h = TimerHeap::default();
        h.set(EntryId(1), ts(10));
        assert!(h.pop_due(ts(9)).is_none());
        assert_eq!(h.pop_due(ts(10)), Some((ts(10), EntryId(1))));
    }
}
