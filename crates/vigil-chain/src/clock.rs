//! Wall-clock time for the embedded chain, injectable so that tests and the
//! simulator control block timestamps and time-based locktimes.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of the current UNIX time, in seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the UNIX epoch.
    fn now_secs(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `start` seconds since the epoch.
    pub fn new(start: u64) -> Self {
        Self(AtomicU64::new(start))
    }

    /// Sets the time.
    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_secs(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
