//! Semantic comparison of two `FileDescriptorSet`s, package by package.
//!
//! What counts is what reaches the wire or generated code: packages,
//! messages (nested ones and map entries too), fields (name, number, label,
//! type, type name, oneof by name, JSON name, proto3 optional, defaults,
//! options), oneofs, enums and their values, services and methods, reserved
//! names and ranges, extensions. What does not count: file names and paths,
//! imports, comments, `go_package`, and option messages that are present but
//! empty. Items are matched by name, so a difference reads as a path such as
//! `opamp.proto.AgentToServer.sequence_num: number 2 in the reference, 20 in proto/`.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, FileOptions, OneofDescriptorProto, ServiceDescriptorProto,
};

const REFERENCE: &str = "the reference";
const OURS: &str = "proto/";

/// One way in which proto/ differs from the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Fully qualified name of the element, e.g. `opamp.proto.AgentToServer.sequence_num`.
    pub path: String,
    /// What differs, e.g. `number 2 in the reference, 20 in proto/`.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// proto/ does not describe the reference schema. Lists every difference,
/// the first one (in the reference's declaration order) on top.
#[derive(Debug, thiserror::Error)]
pub struct SchemaMismatch {
    pub differences: Vec<Difference>,
}

impl SchemaMismatch {
    pub fn first(&self) -> Option<&Difference> {
        self.differences.first()
    }
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(first) = self.first() else {
            return write!(f, "no differences");
        };
        write!(f, "proto/ does not match the reference schema: {first}")?;
        let rest = &self.differences[1..];
        if !rest.is_empty() {
            write!(f, "\n{} more difference(s):", rest.len())?;
            for difference in rest.iter().take(30) {
                write!(f, "\n  {difference}")?;
            }
        }
        Ok(())
    }
}

/// Compares `ours` (compiled from proto/) with `reference`, in both directions.
pub fn compare(
    reference: &FileDescriptorSet,
    ours: &FileDescriptorSet,
) -> Result<(), SchemaMismatch> {
    let mut diff = Differences::default();
    let (reference, ours) = (packages(reference), packages(ours));
    let (r, o) = (
        named(&reference, |p| p.0.as_str()),
        named(&ours, |p| p.0.as_str()),
    );
    for (name, (_, r), (_, o)) in diff.pair_up("", "package", &r, &o) {
        compare_package(&mut diff, name, r, o);
    }
    if diff.0.is_empty() {
        Ok(())
    } else {
        Err(SchemaMismatch {
            differences: diff.0,
        })
    }
}

/// The contents of all files of one package, as if they were one file.
#[derive(Default)]
struct Package<'a> {
    syntax: Vec<&'a str>,
    messages: Vec<&'a DescriptorProto>,
    enums: Vec<&'a EnumDescriptorProto>,
    services: Vec<&'a ServiceDescriptorProto>,
    extensions: Vec<&'a FieldDescriptorProto>,
    options: Vec<FileOptions>,
}

fn packages(set: &FileDescriptorSet) -> Vec<(String, Package<'_>)> {
    let mut by_name: BTreeMap<String, Package<'_>> = BTreeMap::new();
    for file in &set.file {
        let package = by_name.entry(file.package().to_owned()).or_default();
        add_file(package, file);
    }
    by_name.into_iter().collect()
}

fn add_file<'a>(package: &mut Package<'a>, file: &'a FileDescriptorProto) {
    // proto2 files may leave `syntax` unset; say so explicitly.
    let syntax = if file.syntax().is_empty() {
        "proto2"
    } else {
        file.syntax()
    };
    if !package.syntax.contains(&syntax) {
        package.syntax.push(syntax);
    }
    package.messages.extend(&file.message_type);
    package.enums.extend(&file.enum_type);
    package.services.extend(&file.service);
    package.extensions.extend(&file.extension);
    // go_package is where Go code lives, which is ours to choose.
    let options = FileOptions {
        go_package: None,
        ..file.options.clone().unwrap_or_default()
    };
    if options != FileOptions::default() && !package.options.contains(&options) {
        package.options.push(options);
    }
}

fn compare_package(diff: &mut Differences, name: &str, r: &Package<'_>, o: &Package<'_>) {
    let path = if name.is_empty() {
        "(no package)"
    } else {
        name
    };
    diff.same(path, "syntax", &r.syntax, &o.syntax);
    diff.same(
        path,
        "file options (besides go_package)",
        &r.options,
        &o.options,
    );
    for (name, r, o) in diff.pair_up(
        path,
        "message",
        &named(&r.messages, |m| m.name()),
        &named(&o.messages, |m| m.name()),
    ) {
        compare_message(diff, &join(path, name), r, o);
    }
    for (name, r, o) in diff.pair_up(
        path,
        "enum",
        &named(&r.enums, |e| e.name()),
        &named(&o.enums, |e| e.name()),
    ) {
        compare_enum(diff, &join(path, name), r, o);
    }
    for (name, r, o) in diff.pair_up(
        path,
        "service",
        &named(&r.services, |s| s.name()),
        &named(&o.services, |s| s.name()),
    ) {
        compare_service(diff, &join(path, name), r, o);
    }
    compare_fields(
        diff,
        path,
        "extension",
        &r.extensions,
        &o.extensions,
        &[],
        &[],
    );
}

fn compare_message(diff: &mut Differences, path: &str, r: &DescriptorProto, o: &DescriptorProto) {
    let (r_fields, o_fields): (Vec<_>, Vec<_>) =
        (r.field.iter().collect(), o.field.iter().collect());
    compare_fields(
        diff,
        path,
        "field",
        &r_fields,
        &o_fields,
        &r.oneof_decl,
        &o.oneof_decl,
    );
    for (name, r, o) in diff.pair_up(
        path,
        "oneof",
        &named(&r.oneof_decl, |d| d.name()),
        &named(&o.oneof_decl, |d| d.name()),
    ) {
        diff.same(
            &join(path, name),
            "options",
            &r.options.clone().unwrap_or_default(),
            &o.options.clone().unwrap_or_default(),
        );
    }
    diff.same(
        path,
        "oneof order",
        &names(&r.oneof_decl, |d| d.name()),
        &names(&o.oneof_decl, |d| d.name()),
    );
    let (r_nested, o_nested) = (
        named(&r.nested_type, |m| m.name()),
        named(&o.nested_type, |m| m.name()),
    );
    for (name, r, o) in diff.pair_up(path, "nested message", &r_nested, &o_nested) {
        compare_message(diff, &join(path, name), r, o);
    }
    for (name, r, o) in diff.pair_up(
        path,
        "nested enum",
        &named(&r.enum_type, |e| e.name()),
        &named(&o.enum_type, |e| e.name()),
    ) {
        compare_enum(diff, &join(path, name), r, o);
    }
    let (r_ext, o_ext): (Vec<_>, Vec<_>) =
        (r.extension.iter().collect(), o.extension.iter().collect());
    compare_fields(diff, path, "extension", &r_ext, &o_ext, &[], &[]);
    diff.same(
        path,
        "extension ranges",
        &r.extension_range,
        &o.extension_range,
    );
    diff.same(
        path,
        "reserved ranges",
        &r.reserved_range,
        &o.reserved_range,
    );
    diff.same(path, "reserved names", &r.reserved_name, &o.reserved_name);
    diff.same(
        path,
        "options",
        &r.options.clone().unwrap_or_default(),
        &o.options.clone().unwrap_or_default(),
    );
}

fn compare_fields(
    diff: &mut Differences,
    path: &str,
    kind: &str,
    r: &[&FieldDescriptorProto],
    o: &[&FieldDescriptorProto],
    r_oneofs: &[OneofDescriptorProto],
    o_oneofs: &[OneofDescriptorProto],
) {
    for (name, rf, of) in diff.pair_up(path, kind, &named(r, |f| f.name()), &named(o, |f| f.name()))
    {
        let path = join(path, name);
        diff.same(&path, "number", &rf.number, &of.number);
        diff.same(
            &path,
            "label",
            &rf.label.map(label_name),
            &of.label.map(label_name),
        );
        diff.same(
            &path,
            "type",
            &rf.r#type.map(type_name),
            &of.r#type.map(type_name),
        );
        diff.same(&path, "type name", &rf.type_name, &of.type_name);
        diff.same(&path, "extendee", &rf.extendee, &of.extendee);
        diff.same(&path, "default value", &rf.default_value, &of.default_value);
        diff.same(
            &path,
            "oneof",
            &oneof_name(rf, r_oneofs),
            &oneof_name(of, o_oneofs),
        );
        diff.same(&path, "JSON name", &rf.json_name, &of.json_name);
        diff.same(
            &path,
            "proto3_optional",
            &rf.proto3_optional(),
            &of.proto3_optional(),
        );
        diff.same(
            &path,
            "options",
            &rf.options.clone().unwrap_or_default(),
            &of.options.clone().unwrap_or_default(),
        );
    }
    // Declaration order decides the order of generated fields and, in some
    // runtimes, of fields on the wire.
    diff.same(
        path,
        &format!("{kind} order"),
        &names(r, |f| f.name()),
        &names(o, |f| f.name()),
    );
}

fn compare_enum(
    diff: &mut Differences,
    path: &str,
    r: &EnumDescriptorProto,
    o: &EnumDescriptorProto,
) {
    for (name, rv, ov) in diff.pair_up(
        path,
        "enum value",
        &named(&r.value, |v| v.name()),
        &named(&o.value, |v| v.name()),
    ) {
        let path = join(path, name);
        diff.same(&path, "number", &rv.number, &ov.number);
        diff.same(
            &path,
            "options",
            &rv.options.clone().unwrap_or_default(),
            &ov.options.clone().unwrap_or_default(),
        );
    }
    // The first value is the default in proto3.
    diff.same(
        path,
        "enum value order",
        &names(&r.value, |v| v.name()),
        &names(&o.value, |v| v.name()),
    );
    diff.same(
        path,
        "reserved ranges",
        &r.reserved_range,
        &o.reserved_range,
    );
    diff.same(path, "reserved names", &r.reserved_name, &o.reserved_name);
    diff.same(
        path,
        "options",
        &r.options.clone().unwrap_or_default(),
        &o.options.clone().unwrap_or_default(),
    );
}

fn compare_service(
    diff: &mut Differences,
    path: &str,
    r: &ServiceDescriptorProto,
    o: &ServiceDescriptorProto,
) {
    for (name, rm, om) in diff.pair_up(
        path,
        "method",
        &named(&r.method, |m| m.name()),
        &named(&o.method, |m| m.name()),
    ) {
        let path = join(path, name);
        diff.same(&path, "input type", &rm.input_type, &om.input_type);
        diff.same(&path, "output type", &rm.output_type, &om.output_type);
        diff.same(
            &path,
            "client streaming",
            &rm.client_streaming(),
            &om.client_streaming(),
        );
        diff.same(
            &path,
            "server streaming",
            &rm.server_streaming(),
            &om.server_streaming(),
        );
        diff.same(
            &path,
            "options",
            &rm.options.clone().unwrap_or_default(),
            &om.options.clone().unwrap_or_default(),
        );
    }
    diff.same(
        path,
        "options",
        &r.options.clone().unwrap_or_default(),
        &o.options.clone().unwrap_or_default(),
    );
}

/// The collected differences, in the order they were found.
#[derive(Default)]
struct Differences(Vec<Difference>);

impl Differences {
    fn push(&mut self, path: &str, detail: String) {
        self.0.push(Difference {
            path: path.to_owned(),
            detail,
        });
    }

    /// Records a difference when `r != o`, showing both values.
    fn same<T: PartialEq + Debug>(&mut self, path: &str, what: &str, r: &T, o: &T) {
        if r != o {
            self.push(
                path,
                format!("{what} {} in {REFERENCE}, {} in {OURS}", show(r), show(o)),
            );
        }
    }

    /// Matches items by name: reports the ones only one side has, returns the
    /// pairs (in the reference's order).
    fn pair_up<'a, 'n, T>(
        &mut self,
        parent: &str,
        kind: &str,
        r: &'n [(&'n str, &'a T)],
        o: &'n [(&'n str, &'a T)],
    ) -> Vec<(&'n str, &'a T, &'a T)> {
        let mut pairs = Vec::new();
        for (name, r_item) in r {
            match o.iter().find(|(other, _)| other == name) {
                Some((_, o_item)) => pairs.push((*name, *r_item, *o_item)),
                None => self.push(
                    &join(parent, name),
                    format!("{kind} in {REFERENCE}, missing from {OURS}"),
                ),
            }
        }
        for (name, _) in o
            .iter()
            .filter(|(name, _)| !r.iter().any(|(other, _)| other == name))
        {
            self.push(
                &join(parent, name),
                format!("{kind} in {OURS}, not in {REFERENCE}"),
            );
        }
        pairs
    }
}

fn named<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> Vec<(&'a str, &'a T)> {
    items.iter().map(|item| (name(item), item)).collect()
}

fn names<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> Vec<&'a str> {
    items.iter().map(name).collect()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Values as a reader wants them: bare numbers and names, `unset` for `None`.
fn show<T: Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    if text == "None" {
        return "unset".to_owned();
    }
    let inner = text
        .strip_prefix("Some(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(&text);
    inner.trim_matches('"').to_owned()
}

fn oneof_name(field: &FieldDescriptorProto, oneofs: &[OneofDescriptorProto]) -> Option<String> {
    let index = usize::try_from(field.oneof_index?).ok()?;
    Some(
        oneofs
            .get(index)
            .map_or_else(|| format!("#{index} (undeclared)"), |o| o.name().to_owned()),
    )
}

fn label_name(value: i32) -> String {
    Label::try_from(value).map_or_else(|_| format!("label {value}"), |l| l.as_str_name().to_owned())
}

fn type_name(value: i32) -> String {
    Type::try_from(value).map_or_else(|_| format!("type {value}"), |t| t.as_str_name().to_owned())
}
