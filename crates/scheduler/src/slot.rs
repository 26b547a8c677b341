//! Starting a large slot: its prepared runs split into chunks and shares, one share per
//! runtime worker, each started by a thread pinned to a CPU of its own (`pin.rs`) that sleeps
//! to just before the slot, warms its CPU's cache for its share and spins to the slot.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};

use crate::{clock, pin, run::Prepared, shared::Shared};

/// A slot with at least this many runs is started by several tasks, one per runtime worker.
pub(crate) const SPLIT_AT: usize = 512;
/// How often a thread waiting for a large slot looks whether the scheduler stops.
const STOP_CHECK: Duration = Duration::from_millis(20);
/// How long before a large slot the threads starting its shares wake: they warm their CPU's
/// cache for their share ([`Shares::warm`], 0.1-0.2 ms for 5,000 runs here), then spin to
/// the slot.
const SPIN: SignedDuration = SignedDuration::from_micros(1000);

/// A large slot's prepared runs, in chunks of at most [`CHUNK`], for the threads that start
/// them at the slot. Each thread has a share (a range of chunks) that it warms before the slot and
/// starts first, front to back; then it takes what is left of the others' shares, so a thread
/// the kernel holds up (another process on its CPU) does not hold up its share's runs.
pub(crate) struct Shares {
    chunks: Vec<Mutex<Vec<Prepared>>>,
    /// Per thread: the next chunk of its share not yet taken, and the end of its share.
    cursors: Vec<(AtomicUsize, usize)>,
}

/// Runs per chunk of a [`Shares`]: the last chunk bounds how long one thread works on alone
/// (about 0.1 ms), and each chunk has a cost of its own (its contexts' shared tokens and
/// handle, a few clock reads; 256-run chunks put 0.05 ms on the median lateness of 10,000
/// runs here).
const CHUNK: usize = 1024;
/// The fewest runs per chunk, when a slot has too few runs for four [`CHUNK`]s a thread.
const MIN_CHUNK: usize = 64;

impl Shares {
    /// Splits `runs` into chunks (each with contexts of its own, see [`Shared::contexts`])
    /// and the chunks into `threads` shares.
    pub(crate) fn new(shared: &Arc<Shared>, runs: Vec<Prepared>, threads: usize) -> Shares {
        // At least four chunks a thread, so that a smaller slot is shared out too.
        let size = (runs.len() / (threads.max(1) * 4)).clamp(MIN_CHUNK, CHUNK);
        let mut chunks = Vec::with_capacity(runs.len().div_ceil(size));
        let mut runs = runs.into_iter();
        loop {
            let mut chunk: Vec<Prepared> = runs.by_ref().take(size).collect();
            if chunk.is_empty() {
                break;
            }
            shared.contexts(&mut chunk);
            chunks.push(Mutex::new(chunk));
        }
        let per = chunks.len().div_ceil(threads.max(1));
        let bound = |i: usize| (i * per).min(chunks.len());
        let cursors = (0..threads).map(|t| (AtomicUsize::new(bound(t)), bound(t + 1))).collect();
        Shares { chunks, cursors }
    }

    /// The next chunk for thread `nth`: from its own share, else from another's.
    fn take(&self, nth: usize) -> Option<Vec<Prepared>> {
        let threads = self.cursors.len();
        for t in (0..threads).map(|i| (nth + i) % threads) {
            let (next, end) = &self.cursors[t];
            // Looked at first, so that the cursors of finished shares stop growing.
            if next.load(Ordering::Relaxed) >= *end {
                continue;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i < *end {
                let mut chunk = self.chunks[i].lock().unwrap_or_else(|p| p.into_inner());
                return Some(std::mem::take(&mut *chunk));
            }
        }
        None
    }

    /// Reads what starting each run of thread `nth`'s share will read first (its entry's
    /// shared part and its job's reference count, in the same allocation as the job's own
    /// data), so that the starts at the slot find it in this CPU's cache instead of waiting
    /// for memory once per run: 10,000 entries are spread over more memory than a CPU's own
    /// cache keeps between two slots. Stops early when `due` says the slot has come.
    fn warm(&self, nth: usize, due: impl Fn() -> bool) {
        let (next, end) = &self.cursors[nth];
        let mut sum = 0usize;
        for chunk in &self.chunks[next.load(Ordering::Relaxed)..*end] {
            if due() {
                break;
            }
            for prepared in chunk.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                if let Some(fire) = &prepared.fire {
                    sum = sum
                        .wrapping_add(fire.runs.changed_at.load(Ordering::Relaxed) as usize)
                        .wrapping_add(Arc::strong_count(&fire.runs.job));
                }
            }
        }
        std::hint::black_box(sum);
    }
}

/// Starts a share of a large slot's prepared runs at the slot, on a thread of tokio's
/// blocking pool (with the runtime entered, so jobs can spawn tasks and use timers), pinned
/// to the `nth` CPU the process may use while it waits and starts them ([`pin`]).
///
/// Why not a task: a tokio worker parked until the slot can take a millisecond to get going
/// on a virtual machine, and tasks woken together can end up queued behind each other on one
/// worker. A thread of its own sleeps (with the scheduler's clock) to just before the slot and
/// spins to it.
pub(crate) fn start_on_thread(shared: Arc<Shared>, at: Timestamp, shares: Arc<Shares>, nth: usize) {
    let runtime = tokio::runtime::Handle::current();
    drop(tokio::task::spawn_blocking(move || {
        let _pinned = pin::Pinned::nth_cpu(nth);
        let until = |at: Timestamp| {
            if shared.clock.in_real_time() {
                // Each thread sleeps on its own: woken by one sleeper thread one after the
                // other, the second waits while the first spins on the waker's CPU.
                loop {
                    let now = shared.clock.now();
                    if shared.stop.is_cancelled() {
                        return false;
                    }
                    if now >= at {
                        return true;
                    }
                    // In steps, so that a shutdown is not kept waiting for the whole lead.
                    let step = clock::to_std(at.duration_since(now)).min(STOP_CHECK);
                    std::thread::sleep(step);
                }
            }
            runtime.block_on(async {
                while shared.clock.now() < at {
                    tokio::select! {
                        _ = shared.clock.sleep_until(at) => {}
                        _ = shared.stop.cancelled() => return false,
                    }
                }
                true
            })
        };
        if !until(at.checked_sub(SPIN).unwrap_or(at)) {
            return;
        }
        shares.warm(nth, || shared.clock.now() >= at);
        // Bounded in real time: a virtual clock does not move while this spins.
        let spun = std::time::Instant::now();
        while shared.clock.now() < at && spun.elapsed() < SPIN.unsigned_abs() * 2 {
            std::hint::spin_loop();
        }
        if until(at) {
            let mut started = Vec::new();
            while let Some(chunk) = shares.take(nth) {
                started.push(shared.start_prepared(chunk));
            }
            drop(started);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{run::RunId, Scheduler};

    fn runs(n: u64) -> Vec<Prepared> {
        (0..n).map(|i| Prepared { run: RunId(i), fire: None, ctx: None, ended: None }).collect()
    }

    fn ids(chunk: &[Prepared]) -> Vec<u64> {
        chunk.iter().map(|p| p.run.0).collect()
    }

    #[test]
    fn a_thread_starts_its_own_share_then_takes_what_is_left_of_the_others() {
        let scheduler = Scheduler::new();
        let n = 10 * CHUNK as u64 + 7;
        let shares = Shares::new(&scheduler.shared, runs(n), 2);
        // Eleven chunks (the last of 7 runs): thread 0's share is the first six, thread 1's
        // the last five.
        assert_eq!(shares.chunks.len(), 11);
        let first = shares.take(1).unwrap();
        assert_eq!(ids(&first)[0], 6 * CHUNK as u64);
        // Thread 1 is held up: thread 0 starts its own share, then the rest of thread 1's.
        let mut taken = vec![first];
        while let Some(chunk) = shares.take(0) {
            taken.push(chunk);
        }
        assert!(shares.take(1).is_none());
        let mut all: Vec<u64> = taken.iter().flat_map(|c| ids(c)).collect();
        assert_eq!(all.len() as u64, n);
        assert_eq!(ids(&taken[1])[0], 0, "its own share first");
        assert_eq!(ids(&taken[7])[0], 7 * CHUNK as u64, "then the other's, in order");
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "each run exactly once");
    }

    #[test]
    fn a_smaller_slot_is_shared_out_in_smaller_chunks() {
        let scheduler = Scheduler::new();
        let shares = Shares::new(&scheduler.shared, runs(600), 2);
        // 600 runs: eight chunks of 75, four for each thread.
        assert_eq!(shares.chunks.len(), 8);
        assert_eq!(ids(&shares.take(1).unwrap())[0], 300);
    }

    #[test]
    fn with_more_threads_than_chunks_every_run_is_still_taken_once() {
        let scheduler = Scheduler::new();
        let shares = Shares::new(&scheduler.shared, runs(10), 4);
        assert_eq!(shares.chunks.len(), 1);
        let mut all = Vec::new();
        for nth in [2, 0, 1, 3] {
            while let Some(chunk) = shares.take(nth) {
                all.extend(ids(&chunk));
            }
        }
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
