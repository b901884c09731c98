//! protoc plugin: Python modules from protoc's built-in generators, laid out as a package.
fn main() {
    std::process::exit(codegen::plugin::run(codegen::python::generate));
}
