//! Fuzz harnesses for the OpAMP server (`cargo fuzz run <target>` from `server/`):
//!
//! - `request_path`: the agent listener's router with arbitrary headers and bodies
//!   ([`request::run`]);
//! - `protocol_core`: the pure protocol core fed arbitrary message sequences
//!   ([`core::run`]).
//!
//! The harnesses live in this library so they can also be run as plain tests on a few
//! fixed inputs (`cargo test` in this folder) without a nightly toolchain.

pub mod core;
pub mod model;
pub mod request;

#[cfg(test)]
mod tests {
    use arbitrary::{Arbitrary, Unstructured};

    /// Deterministic pseudo-random bytes (xorshift), so the smoke test needs no seed files.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn harnesses_run_on_fixed_inputs() {
        for seed in 0..300 {
            let data = bytes(seed, 4096);
            if let Ok(steps) = Vec::<crate::core::Step>::arbitrary(&mut Unstructured::new(&data)) {
                crate::core::run(steps);
            }
            if let Ok(cases) = Vec::<crate::request::Case>::arbitrary(&mut Unstructured::new(&data))
            {
                crate::request::run(cases);
            }
        }
    }
}
