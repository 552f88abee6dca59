//! Fuzz the simulator's scenario parser (TOML → validated scenario, crowds expanded): any
//! input gives a scenario or an error naming a field, never a panic; a parsed scenario
//! names every node's network settings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::sim::scenario::SimScenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = SimScenario::parse(text) {
        assert_eq!(s.net.len(), s.node_count());
    }
});
