//! Pinning the thread that starts a share of a large slot to a CPU of its own.
//!
//! The threads that start a slot's shares wake shortly before it and spin to it. Woken
//! together, the kernel may queue two of them on one CPU (it places a woken thread near its
//! waker), where the second waits for the first to stop spinning and start its share: a
//! millisecond lost, measured by the lateness benchmark. Pinned, each share starts on its own
//! CPU at the slot. The pin lasts while the guard lives; the thread's own affinity comes back
//! after (the threads are tokio's blocking pool, used for other work later).

/// A thread pinned to one CPU; dropping it restores the thread's former affinity.
pub(crate) struct Pinned {
    #[cfg(target_os = "linux")]
    before: libc::cpu_set_t,
}

impl Pinned {
    /// Pins the calling thread to the `nth` of the CPUs it may run on, if there are more than
    /// `nth` (and more than one). `None` when it was not pinned.
    #[cfg(target_os = "linux")]
    pub(crate) fn nth_cpu(nth: usize) -> Option<Pinned> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: a zeroed cpu_set_t is an empty set; the kernel writes at most `size` bytes.
        let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if unsafe { libc::sched_getaffinity(0, size, &mut before) } != 0 {
            return None;
        }
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &before) })
            .collect();
        if allowed.len() < 2 {
            return None;
        }
        let cpu = *allowed.get(nth)?;
        // SAFETY: as above; `cpu` is below CPU_SETSIZE.
        let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpu, &mut only) };
        (unsafe { libc::sched_setaffinity(0, size, &only) } == 0).then_some(Pinned { before })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn nth_cpu(_nth: usize) -> Option<Pinned> {
        None
    }
}

#[cfg(target_os = "linux")]
impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `before` is the set the kernel gave for this thread.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.before);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn cpus() -> Vec<usize> {
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
    }

    #[test]
    fn a_pin_holds_while_its_guard_lives_and_the_old_affinity_comes_back() {
        std::thread::spawn(|| {
            let all = cpus();
            let pinned = Pinned::nth_cpu(1);
            if all.len() < 2 {
                assert!(pinned.is_none(), "one CPU: nothing to pin to");
                return;
            }
            assert!(pinned.is_some());
            assert_eq!(cpus(), vec![all[1]]);
            drop(pinned);
            assert_eq!(cpus(), all);
            assert!(Pinned::nth_cpu(all.len()).is_none(), "no such CPU: not pinned");
            assert_eq!(cpus(), all);
        })
        .join()
        .unwrap();
    }
}
