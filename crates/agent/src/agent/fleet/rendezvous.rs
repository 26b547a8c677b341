//! Rendezvous hashing: which nodes run a `run_on` task's slot. Every node computes the same
//! order (FNV-1a with a finalizer over the task, the slot and each node's name; the values
//! are pinned by a test), over the live nodes that may run the task.

use std::time::Duration;

use crate::{config::Task, store::NodeRecord};

/// How many nodes after the preferred ones may take a slot they left (after a grace each);
/// the rest of the fleet never asks, so the database sees a few claims per slot, however
/// many nodes there are.
pub const CLAIM_BACKUPS: u32 = 2;

/// The claims of the fleet's nodes for the same slot go out over this long, each node at an
/// offset of its own.
pub const AHEAD_SPREAD: Duration = Duration::from_millis(250);

/// A node's own offset within [`AHEAD_SPREAD`], the same at every start (a hash of its name).
pub fn spread(node: &str) -> Duration {
    let hash = fnv1a(&[node.as_bytes()]);
    Duration::from_millis(hash % AHEAD_SPREAD.as_millis() as u64)
}

/// How long a node waits per rank behind the preferred ones before it tries to take a slot
/// of a `run_on` task itself.
pub const CLAIM_GRACE: Duration = Duration::from_millis(300);

/// How long the `k`-th backup node (1: the first after the preferred ones) waits after a
/// slot before it claims a seat left free: a grace for each node before it, and a spread of
/// its own (the backups of many slots, on many nodes, do not all ask at the same instant).
pub fn backup_wait(k: u32, node: &str) -> Duration {
    CLAIM_GRACE * k + spread(node)
}

/// FNV-1a with a finalizer: a hash every node computes the same.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(Fnv::new(), |h, part| h.part(part)).finish()
}

/// [`fnv1a`] part by part, so that parts shared by many hashes (a task and a slot, before
/// each node's name) are hashed once.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(super) const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Adds a part (its bytes, then a separator).
    pub(super) fn part(self, bytes: &[u8]) -> Fnv {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(Self::PRIME);
        }
        h ^= 0xff;
        Fnv(h.wrapping_mul(Self::PRIME))
    }

    /// MurmurHash3's finalizer: every input bit reaches the high bits the ranking compares.
    pub(super) fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The hash of a task's slot that every node's rendezvous hash for it starts with: hashed
/// once per slot, then continued with each node's name.
fn slot_prefix(task: &Task, slot_ts: i64) -> Fnv {
    Fnv::new().part(task.name.as_bytes()).part(&slot_ts.to_be_bytes())
}

/// A node as claims see it.
#[derive(Clone, Debug)]
pub struct Candidate {
    host: crate::agent::Host,
    alive: bool,
}

/// The nodes of the store as claims see them, judged alive or not at `now`.
pub fn candidates(nodes: &[NodeRecord], now: jiff::Timestamp) -> Vec<Candidate> {
    nodes
        .iter()
        .map(|n| Candidate {
            host: crate::agent::Host {
                name: n.name.clone(),
                addresses: n.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                tags: n.tags.clone(),
            },
            alive: super::node_status(n, now) == crate::store::NodeStatus::Alive,
        })
        .collect()
}

/// The live nodes that may run `task`, most preferred first for `slot_ts` (rendezvous
/// hashing: each slot has its own order, so the load spreads, and every node computes the same
/// order from the same list).
pub fn rendezvous(task: &Task, slot_ts: i64, nodes: &[NodeRecord], me: &str) -> Vec<String> {
    rendezvous_among(task, slot_ts, &candidates(nodes, crate::clock::now()), me)
}

/// [`rendezvous`] over nodes made ready by [`candidates`].
pub fn rendezvous_among(task: &Task, slot_ts: i64, nodes: &[Candidate], me: &str) -> Vec<String> {
    let prefix = slot_prefix(task, slot_ts);
    let hash = |name: &str| prefix.part(name.as_bytes()).finish();
    let mut ranked: Vec<(u64, &str)> = nodes
        .iter()
        .filter(|n| n.host.name == me || n.alive)
        .filter(|n| n.host.runs(task))
        .map(|n| (hash(&n.host.name), n.host.name.as_str()))
        .collect();
    if !ranked.iter().any(|(_, n)| *n == me) {
        ranked.push((hash(me), me));
    }
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().map(|(_, n)| n.to_owned()).collect()
}

/// This node's place in [`rendezvous_among`]'s order (0: preferred), without building the
/// order: what a claim needs, at every slot of every `run_on` task.
pub fn rank_among(task: &Task, slot_ts: i64, nodes: &[Candidate], me: &str) -> usize {
    let prefix = slot_prefix(task, slot_ts);
    let mine = prefix.part(me.as_bytes()).finish();
    nodes
        .iter()
        .filter(|n| n.alive && n.host.name != me)
        .filter(|n| {
            let theirs = prefix.part(n.host.name.as_bytes()).finish();
            // The order sorts (hash, name) pairs, greatest first.
            (theirs, n.host.name.as_str()) > (mine, me)
        })
        // Whether a node may run the task (addresses, names, tags) costs more than its hash:
        // asked only of the nodes ahead of this one.
        .filter(|n| n.host.runs(task))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_node_hash_is_the_same_in_every_version() {
        // Nodes of different versions in one fleet must agree on each slot's preferred node:
        // these values were computed apart from this code (FNV-1a, 0xff after each part,
        // MurmurHash3's finalizer).
        let slot = 1_796_000_000i64.to_be_bytes();
        assert_eq!(fnv1a(&[b"billing", &slot, b"node-1"]), 0x86ff_ef43_3832_1a50);
        assert_eq!(fnv1a(&[b"node-1"]), 0xe554_35ae_2194_ce5d);
        let prefix = Fnv::new().part(b"billing").part(&slot);
        assert_eq!(prefix.part(b"node-1").finish(), 0x86ff_ef43_3832_1a50);
    }

    #[test]
    fn rendezvous_spreads_slots_and_agrees_everywhere() {
        let text = "[[task]]\nname = \"solo\"\nschedule = \"@hourly\"\nrun_on = \"one\"\ncommand = \"x\"\n";
        let task =
            crate::config::parse(std::path::Path::new("t.toml"), text).unwrap().tasks.remove(0);
        let now = crate::clock::now().to_string();
        let nodes: Vec<NodeRecord> = ["a", "b", "c"]
            .iter()
            .map(|n| NodeRecord {
                name: (*n).into(),
                addresses: Vec::new(),
                tags: Vec::new(),
                version: "0".into(),
                api: None,
                started_at: now.clone(),
                last_seen: now.clone(),
                stopped_at: None,
            })
            .collect();
        let mut first = HashMap::new();
        for slot in 0..3000 {
            let order = rendezvous(&task, slot, &nodes, "a");
            assert_eq!(order, rendezvous(&task, slot, &nodes, "c"), "every node agrees");
            assert_eq!(order.len(), 3);
            let ready = candidates(&nodes, crate::clock::now());
            for (place, node) in order.iter().enumerate() {
                assert_eq!(rank_among(&task, slot, &ready, node), place, "a node knows its place");
            }
            *first.entry(order[0].clone()).or_insert(0) += 1;
        }
        for node in ["a", "b", "c"] {
            let n = first[node];
            assert!((800..1200).contains(&n), "{node} preferred {n} times of 3000");
        }
        // A lost node is not preferred; a node that does not match the task is left out.
        let mut lost = nodes.clone();
        lost[1].last_seen = "2000-01-01T00:00:00Z".into();
        assert!(rendezvous(&task, 7, &lost, "a").iter().all(|n| n != "b"));
        let ready = candidates(&lost, crate::clock::now());
        for slot in 0..100 {
            let order = rendezvous(&task, slot, &lost, "a");
            let place = order.iter().position(|n| n == "a").unwrap();
            assert_eq!(rank_among(&task, slot, &ready, "a"), place);
            // A lost node still knows its place among the live (it may run what it fires).
            let place = rendezvous(&task, slot, &lost, "b").iter().position(|n| n == "b");
            assert_eq!(Some(rank_among(&task, slot, &ready, "b")), place);
        }
    }
}
