//! One slot per kind of job: at most one backup, one restore and one import
//! run at a time on a server.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A slot that at most one job of a kind holds at a time.
#[derive(Debug, Default)]
pub struct JobSlot {
    busy: Mutex<bool>,
    freed: Condvar,
}

/// Holding this means holding the slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    slot: Arc<JobSlot>,
}

impl JobSlot {
    /// Takes the slot, waiting up to `wait` for the job holding it to finish.
    #[must_use]
    pub fn acquire(self: &Arc<Self>, wait: Duration) -> Option<SlotGuard> {
        let deadline = Instant::now() + wait;
        let mut busy = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            busy = self.freed.wait_timeout(busy, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        *busy = true;
        Some(SlotGuard { slot: self.clone() })
    }

    /// Whether a job holds the slot.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        *self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        *self.slot.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        self.slot.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_exclusive_and_waits() {
        let slot = Arc::new(JobSlot::default());
        let guard = slot.acquire(Duration::ZERO).expect("free");
        assert!(slot.acquire(Duration::from_millis(20)).is_none());
        let s2 = slot.clone();
        let (acquired, got) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let held = s2.acquire(Duration::from_secs(30));
            acquired.send(held.is_some()).expect("sends");
        });
        // While the guard lives, the waiter must not get the slot...
        assert!(got.recv_timeout(Duration::from_millis(200)).is_err(), "the slot was taken twice");
        assert!(slot.is_busy());
        // ...and once it is dropped, the waiter gets it (well before its 30 s).
        drop(guard);
        assert_eq!(got.recv_timeout(Duration::from_secs(20)), Ok(true));
        waiter.join().expect("joins");
    }
}
