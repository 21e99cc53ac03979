//! Vigil's benchmarks, run side by side with LDK in one process.
//!
//! This crate will own the scenarios of issue 9 (payments in memory and on
//! disk, concurrent payments, forwarding, restart time, bytes written) and the
//! limit analysis (signatures, point multiplications and fsyncs per payment).
//! Each reports measured numbers, never timed assertions.
//!
//! Nothing is implemented here yet.
#![deny(missing_docs)]
