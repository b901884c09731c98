//! Each language's own round-trip test over the vectors (JSON → bytes →
//! message → JSON, and bytes → bytes), run from here so that `cargo test`
//! covers Go, Python, JavaScript and Java too, at every runtime version.

use odigos_opamp_tests::langs::{
    GO_PROTOBUF, PROTOBUF_ES, PROTOBUF_JAVA, PYTHON_PROTOBUF, Runtime,
};
use odigos_opamp_tests::vectors;

fn vector_count() -> usize {
    vectors::load_all(&vectors::vectors_dir()).unwrap().len()
}

/// Runs the language's test and checks it saw every vector.
fn round_trip(runtime: Runtime) {
    let output = runtime.round_trip().unwrap_or_else(|err| panic!("{err}"));
    let expected = format!("round-trip: {} vectors", vector_count());
    assert!(
        output.contains(&expected),
        "{runtime}: its round-trip test did not report {expected:?}:\n{output}"
    );
}

#[test]
fn go_round_trip() {
    round_trip(Runtime::Go);
}

#[test]
fn python_round_trip_on_the_runtime_odigos_pins() {
    round_trip(Runtime::Python {
        protobuf: PYTHON_PROTOBUF[0],
    });
}

#[test]
fn python_round_trip_on_the_newest_runtime() {
    round_trip(Runtime::Python {
        protobuf: PYTHON_PROTOBUF[1],
    });
}

#[test]
fn javascript_round_trip_on_the_lowest_allowed_runtime() {
    round_trip(Runtime::JavaScript {
        protobuf_es: PROTOBUF_ES[0],
    });
}

#[test]
fn javascript_round_trip_on_the_newest_runtime() {
    round_trip(Runtime::JavaScript {
        protobuf_es: PROTOBUF_ES[1],
    });
}

#[test]
fn java_round_trip_on_the_runtime_gen_java_builds_against() {
    round_trip(Runtime::Java {
        protobuf_java: PROTOBUF_JAVA[0],
    });
}

#[test]
fn java_round_trip_on_the_newest_runtime() {
    round_trip(Runtime::Java {
        protobuf_java: PROTOBUF_JAVA[1],
    });
}

#[test]
fn rust_round_trip() {
    let vectors = vectors::load_all(&vectors::vectors_dir()).unwrap();
    for vector in &vectors {
        let wire = vectors::encode(&vector.type_name, &vector.message).unwrap();
        let decoded = vectors::decode(&vector.type_name, &wire).unwrap();
        if let Some(diff) = odigos_opamp_tests::json::first_difference(&vector.message, &decoded) {
            panic!("{}: {diff}", vector.name);
        }
        assert_eq!(
            vectors::encode(&vector.type_name, &decoded).unwrap(),
            wire,
            "{}",
            vector.name
        );
    }
}

#[test]
fn the_committed_manifests_pin_the_runtimes_under_test() {
    let go_mod = std::fs::read_to_string(Runtime::Go.manifest()).unwrap();
    assert!(
        go_mod.contains(&format!("google.golang.org/protobuf v{GO_PROTOBUF}\n")),
        "tests/go/go.mod:\n{go_mod}"
    );
    for protobuf in PYTHON_PROTOBUF {
        let requirements =
            std::fs::read_to_string(Runtime::Python { protobuf }.manifest()).unwrap();
        assert!(
            requirements
                .lines()
                .any(|line| line == format!("protobuf=={protobuf}")),
            "{requirements}"
        );
    }
    for protobuf_es in PROTOBUF_ES {
        let manifest = Runtime::JavaScript { protobuf_es }.manifest();
        let package: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        assert_eq!(
            package["dependencies"]["@bufbuild/protobuf"],
            protobuf_es,
            "{}",
            manifest.display()
        );
        let lock: serde_json::Value = serde_json::from_slice(
            &std::fs::read(manifest.with_file_name("package-lock.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            lock["packages"]["node_modules/@bufbuild/protobuf"]["version"],
            protobuf_es,
            "{}",
            manifest.display()
        );
    }
    // Java: one build, the version set per run; the committed poms default to
    // the runtime gen/java is built against.
    for pom in ["gen/java/pom.xml", "tests/java/vectors/pom.xml"] {
        let text = std::fs::read_to_string(xtask::workspace_root().join(pom)).unwrap();
        let default = format!("<protobuf.version>{}</protobuf.version>", PROTOBUF_JAVA[0]);
        assert_eq!(
            text.matches(&default).count(),
            1,
            "{pom} must declare {default}"
        );
    }
}
