//! The golden vectors encode to the same bytes in Go, Python, JavaScript, Java
//! and Rust (every runtime version under test), every language decodes every other
//! language's bytes back to the vector, and insta pins the bytes.

use std::collections::BTreeMap;

use odigos_opamp_tests::json::first_difference;
use odigos_opamp_tests::langs::protocol::{DecodeItem, EncodeItem, Request, Response};
use odigos_opamp_tests::langs::{LangError, Runtime};
use odigos_opamp_tests::vectors::{self, Vector};

/// The producer key of the in-process Rust codec; the others are `Runtime::key`s.
const RUST: &str = "rust";

/// Wire bytes (hex) per vector name, per producer.
type Encodings = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn every_language_encodes_and_decodes_every_vector_identically() {
    let vectors = vectors::load_all(&vectors::vectors_dir()).unwrap();
    let runtimes = Runtime::all();
    let mut failures = Vec::new();

    let encodings = encode_everywhere(&vectors, &runtimes, &mut failures);
    for vector in &vectors {
        compare_encodings(vector, &encodings[&vector.name], &runtimes, &mut failures);
    }
    let decodes = decode_everywhere(&vectors, &runtimes, &encodings, &mut failures);
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    let producers = runtimes.len() + 1;
    assert_eq!(
        decodes,
        vectors.len() * producers * (producers - 1),
        "every language decodes every other's bytes"
    );

    // All agree; pin what they agree on.
    for vector in &vectors {
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => vector.type_name.as_str(),
        }, {
            insta::assert_snapshot!(vector.name.as_str(), render_hex(&encodings[&vector.name][RUST]));
        });
    }
}

/// Every producer's bytes for every vector: Rust in-process, the other
/// languages by reading the vector files themselves.
fn encode_everywhere(
    vectors: &[Vector],
    runtimes: &[Runtime],
    failures: &mut Vec<String>,
) -> Encodings {
    let mut encodings = Encodings::new();
    for vector in vectors {
        let wire = vectors::encode(&vector.type_name, &vector.message).unwrap();
        // A vector must be canonical proto3 JSON (what every printer emits),
        // or "decodes back to the vector" could hold in no language.
        let printed = vectors::decode(&vector.type_name, &wire).unwrap();
        if let Some(diff) = first_difference(&vector.message, &printed) {
            panic!(
                "{}: not canonical proto3 JSON (omit default values, int64 as strings, camelCase names): {diff}",
                vector.name
            );
        }
        encodings
            .entry(vector.name.clone())
            .or_default()
            .insert(RUST.into(), hex::encode(wire));
    }

    let request = Request {
        encode: vectors
            .iter()
            .map(|v| EncodeItem {
                id: v.name.clone(),
                path: v.path.to_string_lossy().into(),
            })
            .collect(),
        decode: Vec::new(),
    };
    for (runtime, response) in run_all(runtimes, |_| request.clone()) {
        check_reported_version(runtime, &response, failures);
        for item in response.encoded {
            match (item.hex, item.error) {
                (Some(hex), None) => {
                    encodings
                        .entry(item.id)
                        .or_default()
                        .insert(runtime.key(), hex);
                }
                (_, error) => failures.push(format!(
                    "{runtime} could not encode {}: {}",
                    item.id,
                    error.unwrap_or_default()
                )),
            }
        }
    }
    encodings
}

/// Each language (Rust included) decodes every other producer's bytes; the
/// proto3 JSON it prints must be the vector. Returns how many decodes ran.
fn decode_everywhere(
    vectors: &[Vector],
    runtimes: &[Runtime],
    encodings: &Encodings,
    failures: &mut Vec<String>,
) -> usize {
    let by_name: BTreeMap<&str, &Vector> = vectors.iter().map(|v| (v.name.as_str(), v)).collect();
    let others = |vector: &Vector, consumer: &str| -> Vec<(String, String)> {
        let own = encodings[&vector.name]
            .iter()
            .filter(|(producer, _)| producer.as_str() != consumer);
        own.map(|(producer, hex)| (producer.clone(), hex.clone()))
            .collect()
    };
    let mut decodes = 0;
    let mut check =
        |consumer: &str, name: &str, producer: &str, result: Result<serde_json::Value, String>| {
            decodes += 1;
            let problem = match result {
                Ok(json) => first_difference(&by_name[name].message, &json),
                Err(error) => Some(format!("error: {error}")),
            };
            if let Some(problem) = problem {
                failures.push(format!(
                    "{consumer} decoding {name} as encoded by {producer}: {problem}"
                ));
            }
        };

    let request = |runtime: Runtime| Request {
        encode: Vec::new(),
        decode: vectors
            .iter()
            .flat_map(|vector| {
                others(vector, &runtime.key())
                    .into_iter()
                    .map(|(producer, hex)| DecodeItem {
                        id: format!("{}|{producer}", vector.name),
                        type_name: vector.type_name.clone(),
                        hex,
                    })
            })
            .collect(),
    };
    for (runtime, response) in run_all(runtimes, request) {
        for item in response.decoded {
            let (name, producer) = item.id.split_once('|').unwrap();
            let result = item
                .json
                .filter(|_| item.error.is_none())
                .ok_or_else(|| item.error.unwrap_or_default());
            check(&runtime.to_string(), name, producer, result);
        }
    }
    for vector in vectors {
        for (producer, hex) in others(vector, RUST) {
            let result = vectors::decode(&vector.type_name, &hex::decode(hex).unwrap())
                .map_err(|err| err.to_string());
            check(RUST, &vector.name, &producer, result);
        }
    }
    decodes
}

/// Runs every runtime's exchange in parallel (installs serialise on xtask's
/// lock). A runtime that cannot run at all fails the test on the spot.
fn run_all(
    runtimes: &[Runtime],
    request: impl Fn(Runtime) -> Request + Sync,
) -> Vec<(Runtime, Response)> {
    let answers: Vec<(Runtime, Result<Response, LangError>)> = std::thread::scope(|scope| {
        let request = &request;
        let handles: Vec<_> = runtimes
            .iter()
            .map(|&runtime| scope.spawn(move || (runtime, runtime.exchange(&request(runtime)))))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    answers
        .into_iter()
        .map(|(runtime, answer)| (runtime, answer.unwrap_or_else(|err| panic!("{err}"))))
        .collect()
}

/// The program must have run on the runtime version installed for it.
fn check_reported_version(runtime: Runtime, response: &Response, failures: &mut Vec<String>) {
    let reported = response.runtime.version.trim_start_matches('v');
    if reported != runtime.version() {
        failures.push(format!(
            "{runtime} reports {} {} {}: the wrong runtime was loaded",
            response.runtime.language, response.runtime.library, response.runtime.version
        ));
    }
}

fn compare_encodings(
    vector: &Vector,
    by_producer: &BTreeMap<String, String>,
    runtimes: &[Runtime],
    failures: &mut Vec<String>,
) {
    let rust = &by_producer[RUST];
    for runtime in runtimes {
        match by_producer.get(&runtime.key()) {
            None => failures.push(format!("{}: no bytes from {runtime}", vector.name)),
            Some(hex) if hex != rust => {
                let at = first_differing_byte(rust, hex);
                failures.push(format!(
                    "{}: {runtime} encodes differently from rust, first at byte {at} ({} vs {} bytes); from byte {}:\n  {:>13}: {}\n  {:>13}: {}",
                    vector.name,
                    rust.len() / 2,
                    hex.len() / 2,
                    at.saturating_sub(8),
                    RUST,
                    window(rust, at),
                    runtime.key(),
                    window(hex, at),
                ));
            }
            Some(_) => {}
        }
    }
}

fn first_differing_byte(a: &str, b: &str) -> usize {
    a.as_bytes()
        .chunks(2)
        .zip(b.as_bytes().chunks(2))
        .take_while(|(x, y)| x == y)
        .count()
}

/// Up to 32 bytes of `hex` from 8 bytes before byte `at`, for a readable mismatch.
fn window(hex: &str, at: usize) -> &str {
    let start = (at.saturating_sub(8) * 2).min(hex.len());
    &hex[start..(start + 64).min(hex.len())]
}

/// Hex, 32 bytes a line, so a snapshot diff points at the change.
fn render_hex(hex: &str) -> String {
    let lines: Vec<&str> = hex
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    format!("{} bytes\n{}", hex.len() / 2, lines.join("\n"))
}
