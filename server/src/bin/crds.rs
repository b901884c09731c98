//! `odigos-opamp-crds`: prints the CRDs of the two custom resources the server uses,
//! generated from its Rust types, as `<file name>` lines each followed by the YAML. Run by
//! `cargo xtask generate`, which writes them to `deploy/crds/`.

fn main() {
    for (file, yaml) in odigos_opamp_server::kube::crds::manifests() {
        println!("--- {file}");
        print!("{yaml}");
    }
}
