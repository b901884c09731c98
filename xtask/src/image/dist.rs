//! The shipped server binary: profile `dist` (fat LTO, one codegen unit, stripped) and
//! statically linked, so it runs on `scratch`, distroless, Alpine or a glibc base alike.
//!
//! Static linking is glibc's own (`-C target-feature=+crt-static` on the host's
//! `*-linux-gnu` target): it needs nothing but the toolchain every machine of this project
//! has, and keeps the allocator and libc the benchmarks measure. The explicit `--target`
//! keeps the flag off build scripts and proc macros, which cannot be static, and puts the
//! output in its own folder (`target/<triple>/dist/`), apart from the ordinary builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::elf;
use object::read::elf::{
    Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _, SectionHeader as _,
};

use super::ImageError;
use crate::tools;

/// The Cargo profile of the shipped binary (workspace Cargo.toml).
pub const PROFILE: &str = "dist";
/// The package and binary.
pub const PACKAGE: &str = "odigos-opamp-server";
pub const BINARY: &str = "odigos-opamp-server";
/// What makes the gnu target's output static.
const STATIC_FLAG: &str = "-C target-feature=+crt-static";

/// A built shipping binary.
#[derive(Debug, Clone)]
pub struct DistBinary {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// The target triple it was built for.
    pub target: String,
}

/// Build (or find up to date) the shipping binary, and check that it is static.
pub fn build(root: &Path) -> Result<DistBinary, ImageError> {
    let target = host_gnu_target()?;
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} {STATIC_FLAG}"),
        _ => STATIC_FLAG.to_owned(),
    };
    eprintln!("xtask image: cargo build --profile {PROFILE} --target {target} ({STATIC_FLAG})");
    let status = crate::cargo::command(root)
        .args([
            "build",
            "--locked",
            "--profile",
            PROFILE,
            "--target",
            &target,
        ])
        .args(["-p", PACKAGE, "--bin", BINARY])
        .env("RUSTFLAGS", rustflags)
        .status()
        .map_err(|source| ImageError::Spawn {
            program: "cargo".into(),
            source,
        })?;
    if !status.success() {
        return Err(ImageError::CargoBuild(status.to_string()));
    }
    let path = crate::bench::target_dir(root)
        .join(&target)
        .join(PROFILE)
        .join(BINARY);
    let bytes = std::fs::read(&path).map_err(|source| ImageError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    check_static(&bytes).map_err(|why| ImageError::NotStatic {
        path: path.clone(),
        why,
    })?;
    Ok(DistBinary {
        path,
        size_bytes: bytes.len() as u64,
        target,
    })
}

/// The host's triple, which must be a `*-linux-gnu` one (the flag above is glibc's).
fn host_gnu_target() -> Result<String, ImageError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = tools::stdout_of(Command::new(rustc).arg("-vV"))?;
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    if !host.ends_with("-linux-gnu") {
        return Err(ImageError::UnsupportedHost(host));
    }
    Ok(host)
}

/// `Ok` when the ELF file asks for no program interpreter and no shared library: the
/// kernel runs it as it is, with nothing from the image's base.
pub fn check_static(bytes: &[u8]) -> Result<(), String> {
    let file = ElfFile64::<object::Endianness>::parse(bytes)
        .map_err(|e| format!("not a 64-bit ELF file: {e}"))?;
    let endian = file.endian();
    let header = file.elf_header();
    let segments = header
        .program_headers(endian, bytes)
        .map_err(|e| format!("unreadable program headers: {e}"))?;
    if segments.iter().any(|s| s.p_type(endian) == elf::PT_INTERP) {
        return Err("it names a program interpreter (PT_INTERP): dynamically linked".into());
    }
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| format!("unreadable section headers: {e}"))?;
    for (index, section) in sections.iter().enumerate() {
        let Some(dynamic) = section
            .dynamic(endian, bytes)
            .map_err(|e| format!("unreadable dynamic section: {e}"))?
        else {
            continue;
        };
        let (entries, _) = dynamic;
        if entries
            .iter()
            .any(|entry| entry.tag32(endian) == Some(elf::DT_NEEDED))
        {
            return Err(format!(
                "its dynamic section (section {index}) needs shared libraries (DT_NEEDED)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_program_is_refused() {
        // The test binary itself is an ordinary, dynamically linked build.
        let me = std::fs::read(std::env::current_exe().expect("own path")).expect("read");
        let why = check_static(&me).expect_err("dynamically linked");
        assert!(why.contains("dynamically linked"), "{why}");
        assert!(check_static(b"not an ELF file").is_err());
    }
}
