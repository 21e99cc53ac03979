//! The crash simulator driven by fuzzer bytes: the bytes choose the
//! operations (payments, deliveries, write completions, crashes, links,
//! time), the world settles, and every invariant must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_sim::{check, program, world::World};

fuzz_target!(|data: &[u8]| {
    let ops = program::from_bytes(data, 400, 3);
    let mut world = World::new(3);
    program::run(&mut world, &ops);
    world.settle();
    let violations = check::check(&world);
    assert!(violations.is_empty(), "{violations:#?}\nprogram: {ops:?}");
});
