//! `cargo xtask generate --check` catches a hand edit of gen/: a copy of gen/
//! with one byte flipped fails the check, naming exactly that file.

use xtask::files::Drift;
use xtask::generate::{self, GenerateError};

/// The file whose byte is flipped, relative to gen/.
const EDITED: &str = "go/opamp.pb.go";

#[test]
fn a_flipped_byte_in_gen_is_reported_as_exactly_that_file() {
    let root = xtask::workspace_root();
    let copy = tempfile::tempdir().unwrap();
    let mut tree = xtask::files::read_tree(&root.join("gen")).unwrap();
    let contents = tree
        .get_mut(EDITED)
        .expect("gen/ has the file this test edits");
    let middle = contents.len() / 2;
    contents[middle] ^= 0x01;
    xtask::files::sync_tree(copy.path(), &tree).unwrap();

    match generate::check(&root, copy.path()) {
        Err(GenerateError::Drift(drift)) => assert_eq!(drift, [Drift::Changed(EDITED.into())]),
        Err(other) => panic!("the check failed for another reason: {other}"),
        Ok(()) => panic!("the check accepted gen/ with a flipped byte in {EDITED}"),
    }
}
