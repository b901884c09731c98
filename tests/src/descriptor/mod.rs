//! The schema check: proto/ must describe exactly the reference descriptors
//! the project was given (upstream OpAMP v0.17.0 and the kubelet's
//! PodResources v1). [`load`] builds both sides as `FileDescriptorSet`s,
//! [`compare`] says where they differ.

pub mod compare;
pub mod load;

pub use compare::{Difference, SchemaMismatch, compare};
pub use load::{DescriptorError, compile_proto_dir, load_reference, merge};
