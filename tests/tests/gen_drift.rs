//! `cargo xtask generate --check` catches a hand edit of gen/: a copy of gen/
//! with one byte flipped fails the check, naming exactly that file.

use xtask::files::Drift;
use xtask::generate::{self, GenerateError};

/// Flips the middle byte of `edited` (relative to gen/) in a copy of gen/ and
/// checks that exactly that file is reported.
fn a_flipped_byte_is_reported_as_exactly(edited: &str) {
    let root = xtask::workspace_root();
    let copy = tempfile::tempdir().unwrap();
    let mut tree = xtask::files::read_tree(&root.join("gen")).unwrap();
    let contents = tree
        .get_mut(edited)
        .expect("gen/ has the file this test edits");
    let middle = contents.len() / 2;
    contents[middle] ^= 0x01;
    xtask::files::sync_tree(copy.path(), &tree).unwrap();

    match generate::check(&root, copy.path()) {
        Err(GenerateError::Drift(drift)) => assert_eq!(drift, [Drift::Changed(edited.into())]),
        Err(other) => panic!("the check failed for another reason: {other}"),
        Ok(()) => panic!("the check accepted gen/ with a flipped byte in {edited}"),
    }
}

#[test]
fn a_flipped_byte_in_gen_go_is_reported_as_exactly_that_file() {
    a_flipped_byte_is_reported_as_exactly("go/opamp.pb.go");
}

#[test]
fn a_flipped_byte_in_gen_java_is_reported_as_exactly_that_file() {
    a_flipped_byte_is_reported_as_exactly("java/src/main/java/com/opamp/proto/AgentToServer.java");
}

#[test]
fn a_flipped_byte_in_a_crd_is_reported_as_exactly_that_file() {
    let root = xtask::workspace_root();
    let copy = tempfile::tempdir().unwrap();
    let mut tree = xtask::files::read_tree(&root.join(generate::CRDS_DIR)).unwrap();
    let file = "instrumentationinstances.odigos.io.yaml";
    let contents = tree.get_mut(file).expect("deploy/crds/ has the CRD");
    let middle = contents.len() / 2;
    contents[middle] ^= 0x01;
    xtask::files::sync_tree(copy.path(), &tree).unwrap();
    let drift = generate::crds_drift(&root, copy.path()).unwrap();
    assert_eq!(drift, [Drift::Changed(format!("../deploy/crds/{file}"))]);
    assert!(
        generate::crds_drift(&root, &root.join(generate::CRDS_DIR))
            .unwrap()
            .is_empty()
    );
}
