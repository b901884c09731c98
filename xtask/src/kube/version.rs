//! Which Kubernetes a control plane runs: the current release (the default) or the oldest
//! the server supports. Tests choose with [`VERSION_ENV`]; `cargo xtask kube up` with
//! `--version` (or the same variable).

use std::fmt;
use std::str::FromStr;

use super::error::KubeError;
use crate::pins;

/// Environment variable naming the Kubernetes that [`super::ControlPlane::start`] runs:
/// `current` (default) or `oldest`, or their `major.minor` (`1.37`, `1.20`).
pub const VERSION_ENV: &str = "ODIGOS_KUBE_VERSION";

/// A Kubernetes release the harness can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KubeVersion {
    /// [`pins::KUBE_CURRENT`] with etcd [`pins::ETCD_CURRENT`], built from the Go module
    /// proxy.
    #[default]
    Current,
    /// [`pins::KUBE_OLDEST`], the oldest release the server supports, built from Debian's
    /// source package, with Debian's etcd.
    Oldest,
}

impl KubeVersion {
    pub const ALL: [KubeVersion; 2] = [KubeVersion::Current, KubeVersion::Oldest];

    /// What the binary's `--version` and the API server's `/version` say: `v1.37.2`.
    pub fn git_version(self) -> &'static str {
        match self {
            KubeVersion::Current => pins::KUBE_CURRENT,
            KubeVersion::Oldest => pins::KUBE_OLDEST,
        }
    }

    /// `1.37.2`.
    pub fn number(self) -> &'static str {
        let version = self.git_version();
        version.strip_prefix('v').unwrap_or(version)
    }

    /// `1.37`.
    pub fn minor(self) -> &'static str {
        let number = self.number();
        number.rsplit_once('.').map_or(number, |(minor, _)| minor)
    }

    /// The version [`VERSION_ENV`] names, [`KubeVersion::Current`] when it is unset or empty.
    pub fn from_env() -> Result<Self, KubeError> {
        match std::env::var(VERSION_ENV) {
            Ok(text) if !text.trim().is_empty() => text.parse(),
            _ => Ok(KubeVersion::Current),
        }
    }

    /// `current` or `oldest`.
    pub fn name(self) -> &'static str {
        match self {
            KubeVersion::Current => "current",
            KubeVersion::Oldest => "oldest",
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.git_version())
    }
}

impl FromStr for KubeVersion {
    type Err = KubeError;

    /// `current`, `oldest`, or the release with or without `v`, whole or as `major.minor`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let given = text.trim().to_ascii_lowercase();
        let number = given.strip_prefix('v').unwrap_or(&given);
        KubeVersion::ALL
            .into_iter()
            .find(|version| {
                version.name() == given || number == version.number() || number == version.minor()
            })
            .ok_or_else(|| KubeError::UnknownVersion {
                given: text.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_minors_parse() {
        for (text, version) in [
            ("current", KubeVersion::Current),
            ("Oldest", KubeVersion::Oldest),
            (pins::KUBE_CURRENT, KubeVersion::Current),
            ("1.37.2", KubeVersion::Current),
            ("1.20", KubeVersion::Oldest),
            ("v1.20.2", KubeVersion::Oldest),
            (" 1.37 ", KubeVersion::Current),
        ] {
            assert_eq!(text.parse::<KubeVersion>().expect(text), version, "{text}");
        }
        let wrong = "1.29".parse::<KubeVersion>().expect_err("1.29");
        let message = wrong.to_string();
        assert!(
            message.contains("1.29") && message.contains("1.20"),
            "{message}"
        );
    }

    #[test]
    fn the_current_release_is_the_default_and_is_newer() {
        assert_eq!(KubeVersion::default(), KubeVersion::Current);
        assert_eq!(KubeVersion::Oldest.minor(), "1.20");
        assert_eq!(KubeVersion::Oldest.git_version(), "v1.20.2");
        let minor = |v: KubeVersion| -> u32 {
            v.minor()
                .split_once('.')
                .and_then(|(_, m)| m.parse().ok())
                .expect("numeric minor")
        };
        assert!(minor(KubeVersion::Current) >= 34);
    }
}
