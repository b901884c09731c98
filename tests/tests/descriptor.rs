//! proto/ must describe exactly the schemas the project was given.

use std::path::Path;

use odigos_opamp_tests::descriptor::{
    SchemaMismatch, compare, compile_proto_dir, load_reference, merge,
};
use odigos_opamp_tests::tests_dir;

fn reference() -> prost_types::FileDescriptorSet {
    let dir = tests_dir().join("reference");
    merge([
        load_reference(&dir.join("opamp-spec-v0.17.0.descriptor.json")).unwrap(),
        load_reference(&dir.join("kubelet-podresources-v1.descriptor.json")).unwrap(),
    ])
}

fn compare_with_reference(proto_dir: &Path) -> Result<(), SchemaMismatch> {
    compare(&reference(), &compile_proto_dir(proto_dir).unwrap())
}

#[test]
fn proto_dir_matches_the_reference_descriptors() {
    let proto = xtask::workspace_root().join("proto");
    if let Err(mismatch) = compare_with_reference(&proto) {
        panic!("{mismatch}");
    }
}

#[test]
fn every_field_of_the_reference_has_a_json_name() {
    // The comparison of JSON names means something only if both sides carry them.
    let ours = compile_proto_dir(&xtask::workspace_root().join("proto")).unwrap();
    for set in [reference(), ours] {
        for file in &set.file {
            let mut pending: Vec<&prost_types::DescriptorProto> =
                file.message_type.iter().collect();
            while let Some(message) = pending.pop() {
                for field in &message.field {
                    assert!(
                        field.json_name.is_some(),
                        "{}.{} has no json_name",
                        message.name(),
                        field.name()
                    );
                }
                pending.extend(&message.nested_type);
            }
        }
    }
}

/// Compiles a copy of proto/ with `from` replaced by `to` (exactly once) in `file`.
fn mismatch_after_edit(file: &str, from: &str, to: &str) -> SchemaMismatch {
    let copy = tempfile::tempdir().unwrap();
    let source = xtask::workspace_root().join("proto");
    for entry in xtask::files::read_tree(&source).unwrap() {
        let (path, contents) = entry;
        let target = copy.path().join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut text = String::from_utf8(contents).unwrap();
        if path == file {
            assert_eq!(
                text.matches(from).count(),
                1,
                "{from:?} must occur exactly once in proto/{file}"
            );
            text = text.replace(from, to);
        }
        std::fs::write(target, text).unwrap();
    }
    compare_with_reference(copy.path()).expect_err("the edited schema must not match the reference")
}

#[test]
fn a_renumbered_field_is_named_with_both_numbers() {
    let mismatch = mismatch_after_edit(
        "opamp.proto",
        "uint64 sequence_num = 2;",
        "uint64 sequence_num = 20;",
    );
    let first = mismatch.first().unwrap().to_string();
    assert_eq!(
        first,
        "opamp.proto.AgentToServer.sequence_num: number 2 in the reference, 20 in proto/"
    );
    assert_eq!(mismatch.differences.len(), 1, "{mismatch}");
}

#[test]
fn a_renamed_enum_value_is_reported_on_both_sides() {
    let mismatch = mismatch_after_edit(
        "opamp.proto",
        "ServerErrorResponseType_Unavailable = 2;",
        "ServerErrorResponseType_Unreachable = 2;",
    );
    let found: Vec<String> = mismatch
        .differences
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "opamp.proto.ServerErrorResponseType.ServerErrorResponseType_Unavailable: enum value in the reference, missing from proto/",
            "opamp.proto.ServerErrorResponseType.ServerErrorResponseType_Unreachable: enum value in proto/, not in the reference",
            "opamp.proto.ServerErrorResponseType: enum value order [\"ServerErrorResponseType_Unknown\", \"ServerErrorResponseType_BadRequest\", \"ServerErrorResponseType_Unavailable\"] in the reference, [\"ServerErrorResponseType_Unknown\", \"ServerErrorResponseType_BadRequest\", \"ServerErrorResponseType_Unreachable\"] in proto/",
        ]
    );
}

#[test]
fn a_changed_field_type_is_named() {
    let mismatch = mismatch_after_edit(
        "kubelet/podresources/v1/api.proto",
        "repeated int64 cpu_ids = 3;",
        "repeated int32 cpu_ids = 3;",
    );
    assert_eq!(
        mismatch.first().unwrap().to_string(),
        "v1.ContainerResources.cpu_ids: type TYPE_INT64 in the reference, TYPE_INT32 in proto/"
    );
    assert_eq!(mismatch.differences.len(), 1, "{mismatch}");
}
