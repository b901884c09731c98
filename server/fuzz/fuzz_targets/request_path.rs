//! Raw body bytes plus headers → the agent listener's response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odigos_opamp_fuzz::request::{self, Case};

fuzz_target!(|cases: Vec<Case>| request::run(cases));
