//! One slot per kind of job: at most one backup, one restore and one import
//! run at a time on a server.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A slot that at most one job of a kind holds at a time.
#[derive(Debug, Default)]
pub struct JobSlot {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    Held,
    /// The job has ended (its status says so) and is letting the slot go.
    Ending,
}

/// How long a request waits, beyond its own wait, for a job that has ended
/// to let its slot go (its status already says it ended; a client that saw
/// that and starts the next job must not be told one is still running).
const ENDING_WAIT: Duration = Duration::from_secs(10);

/// Holding this means holding the slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    slot: Arc<JobSlot>,
}

impl JobSlot {
    /// Takes the slot, waiting up to `wait` for the job holding it to finish
    /// (and, for one that has ended, until it lets the slot go).
    #[must_use]
    pub fn acquire(self: &Arc<Self>, wait: Duration) -> Option<SlotGuard> {
        let deadline = Instant::now() + wait;
        let ending_deadline = deadline + ENDING_WAIT;
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *state != State::Free {
            let until = if *state == State::Ending { ending_deadline } else { deadline };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self.freed.wait_timeout(state, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        *state = State::Held;
        Some(SlotGuard { slot: self.clone() })
    }

    /// Whether a job holds the slot.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) != State::Free
    }
}

impl SlotGuard {
    /// The job has ended: the slot is about to be free (see `ENDING_WAIT`).
    pub fn ending(&self) {
        *self.slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = State::Ending;
        self.slot.freed.notify_all();
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        *self.slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = State::Free;
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

    #[test]
    fn a_slot_whose_job_has_ended_is_waited_for_even_without_a_wait() {
        let slot = Arc::new(JobSlot::default());
        let guard = slot.acquire(Duration::ZERO).expect("free");
        guard.ending();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(guard);
        });
        assert!(slot.acquire(Duration::ZERO).is_some(), "the ended job's slot is taken once it lets go");
        letting_go.join().expect("joins");
    }
}
