//! Deliberate bugs, for the simulator's tests only (feature
//! `bug-injection`): each one breaks one of the design's invariants, and
//! the simulator must catch it. A bug is switched on for the current thread
//! only, so tests running in parallel do not see each other's.

use std::cell::Cell;

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Release a monitor event as soon as a write holds it, before the
    /// write is durable (breaks I1/I2).
    EarlyRelease,
    /// Report `PaymentForwarded` (whose handling acknowledges the
    /// downstream claim) before the upstream claim is durable.
    EarlyForwardAck,
    /// Drop the deferred restart events at start-up.
    DropDeferred,
    /// Never write the acknowledgements a handled event makes, so it comes
    /// back after a restart (breaks I5).
    ReemitAcknowledged,
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches `bug` on (or every bug off) for this thread.
pub fn set(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug));
}

/// Whether `bug` is on for this thread.
pub fn active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}
