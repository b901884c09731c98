//! protoc plugin: Rust types (prost), proto3 JSON (pbjson) and gRPC (tonic).
fn main() {
    std::process::exit(codegen::plugin::run(codegen::rust::generate));
}
