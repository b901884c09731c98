//! Debian packages a command needs, installed with `apt-get` when missing (the project's
//! machines are Debian 12; CI starts from a fresh one and runs as root).

use std::process::Command;

use crate::tools::{self, ToolError};

/// Why packages could not be installed; says what to run by hand.
#[derive(Debug, thiserror::Error)]
#[error(
    "installing Debian packages ({packages}) failed: {detail}\n\
     This needs root and Debian's package registry. Install them by hand with \
     `apt-get update && apt-get install -y --no-install-recommends {packages}`, then rerun."
)]
pub struct AptError {
    pub packages: String,
    pub detail: String,
}

/// Whether dpkg has `package` installed.
pub fn is_installed(package: &str) -> bool {
    tools::stdout_of(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", package]))
        .is_ok_and(|status| status.starts_with("ii"))
}

/// `apt-get install` of whichever of `packages` are missing, saying so on stderr (`who`
/// names the caller). The package lists of a fresh machine are empty or stale: a failed
/// install is retried once after `apt-get update`. Returns the packages it installed.
pub fn ensure(who: &str, packages: &[&str]) -> Result<Vec<String>, AptError> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    eprintln!("{who}: apt-get install {}", missing.join(" "));
    let install = || {
        tools::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    let failed = |err: ToolError| AptError {
        packages: missing.join(" "),
        detail: err.to_string(),
    };
    if install().is_err() {
        tools::run(Command::new("apt-get").arg("update")).map_err(failed)?;
        install().map_err(failed)?;
    }
    Ok(missing.iter().map(|p| (*p).to_owned()).collect())
}
