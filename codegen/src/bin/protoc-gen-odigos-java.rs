//! protoc plugin: Java classes from protoc's built-in generator, under the Odigos fork's names.
fn main() {
    std::process::exit(codegen::plugin::run(codegen::java::generate));
}
