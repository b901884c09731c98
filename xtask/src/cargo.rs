//! `cargo` run from our automation or from inside a test.

use std::path::Path;
use std::process::Command;

/// `cargo` in `root` with a plain environment: what cargo sets for a test or a build script
/// (package variables, the library path) would make the build scripts of shared dependencies
/// rerun here, and the next ordinary build rebuild them back. Cargo's own configuration
/// (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_BUILD_*`, network and registry settings) stays.
pub fn command(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let configuration = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&name.as_ref())
            || [
                "CARGO_BUILD_",
                "CARGO_NET_",
                "CARGO_REGISTRIES_",
                "CARGO_HTTP_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if (name.starts_with("CARGO_") && !configuration) || name == "LD_LIBRARY_PATH" {
            command.env_remove(name.as_ref());
        }
    }
    command
}
