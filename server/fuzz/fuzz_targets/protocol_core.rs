//! Arbitrary message sequences → the protocol core, with its invariants checked per step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odigos_opamp_fuzz::core::{self, Step};

fuzz_target!(|steps: Vec<Step>| core::run(steps));
