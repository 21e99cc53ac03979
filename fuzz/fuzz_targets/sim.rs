//! The crash simulator driven by fuzzer bytes: the bytes choose the
//! operations (payments, deliveries, write completions, crashes, links,
//! time, force-closes, reorgs, fee changes), the world settles (on chain
//! too), and every invariant must hold. It runs exactly what the CLI runs
//! (`vigil_sim::run_program`).
#![no_main]

use vigil_sim::Config;
use libfuzzer_sys::fuzz_target;
use vigil_sim::program;

fuzz_target!(|data: &[u8]| {
    let ops = program::from_bytes(data, 400, 3);
    let (_, violations) = vigil_sim::run_program(&ops, Config::nodes(3));
    assert!(violations.is_empty(), "{violations:#?}\nreplay: vigil-sim --replay '{}'", program::to_text(&ops));
});
