//! The two facts copy-to-odigos needs from a `go.mod`: the module path (to
//! recognise the Odigos opampserver module) and the version of one dependency
//! after `replace` directives (to check the protobuf runtime).

/// What a `go.mod` says about one required module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `require <path> <version>`, or a `replace` to the same path at another version.
    Version(String),
    /// Replaced by a local directory or another module: the version cannot be read here.
    Replaced(String),
    /// Not required at all.
    Absent,
}

#[derive(Debug, Default)]
pub struct GoMod {
    pub module: Option<String>,
    requires: Vec<(String, String)>,
    /// (old path, old version or empty, new path, new version or empty)
    replaces: Vec<(String, String, String, String)>,
}

impl GoMod {
    /// Reads the directives; tolerant of anything it does not need.
    pub fn parse(text: &str) -> Self {
        let mut go_mod = Self::default();
        let mut block: Option<String> = None;
        for raw in text.lines() {
            let line = raw.split("//").next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            if block.is_some() && line == ")" {
                block = None;
                continue;
            }
            let (verb, args) = match &block {
                Some(verb) => (verb.clone(), line),
                None => {
                    let (verb, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                    let args = args.trim();
                    if args == "(" {
                        block = Some(verb.to_owned());
                        continue;
                    }
                    (verb.to_owned(), args)
                }
            };
            go_mod.directive(&verb, args);
        }
        go_mod
    }

    fn directive(&mut self, verb: &str, args: &str) {
        let words: Vec<&str> = args
            .split_whitespace()
            .map(|w| w.trim_matches('"'))
            .collect();
        match (verb, words.as_slice()) {
            ("module", [path, ..]) => self.module = Some((*path).to_owned()),
            ("require", [path, version, ..]) => self
                .requires
                .push(((*path).to_owned(), (*version).to_owned())),
            ("replace", _) => {
                let Some(arrow) = words.iter().position(|w| *w == "=>") else {
                    return;
                };
                let (old, new) = words.split_at(arrow);
                let new = &new[1..];
                let part = |side: &[&str], i: usize| {
                    side.get(i).map(|s| (*s).to_owned()).unwrap_or_default()
                };
                if !old.is_empty() && !new.is_empty() {
                    self.replaces
                        .push((part(old, 0), part(old, 1), part(new, 0), part(new, 1)));
                }
            }
            _ => {}
        }
    }

    /// The version of `path` the build uses: the `require`d one, unless a
    /// `replace` (for every version, or for exactly that one) says otherwise.
    pub fn requirement(&self, path: &str) -> Requirement {
        let Some((_, required)) = self.requires.iter().rev().find(|(p, _)| p == path) else {
            return Requirement::Absent;
        };
        let replaced = self.replaces.iter().rev().find(|(old, old_version, _, _)| {
            old == path && (old_version.is_empty() || old_version == required)
        });
        match replaced {
            None => Requirement::Version(required.clone()),
            Some((_, _, new, new_version)) if new == path && !new_version.is_empty() => {
                Requirement::Version(new_version.clone())
            }
            Some((_, _, new, new_version)) => {
                Requirement::Replaced(format!("{new} {new_version}").trim_end().to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of opampserver/go.mod in the Odigos repository.
    const REAL_SHAPED: &str = "module github.com/odigos-io/odigos/opampserver

go 1.26.2

require (
\tgithub.com/go-logr/logr v1.4.3
\tgithub.com/odigos-io/odigos/api v0.0.0-00010101000000-000000000000
\tgoogle.golang.org/protobuf v1.36.11
)

require (
\tgithub.com/gogo/protobuf v1.3.2 // indirect
)

replace (
\t// a comment inside the block
\tgithub.com/odigos-io/odigos/api => ../api
\tk8s.io/kubelet => k8s.io/kubelet v0.34.1
)
";

    #[test]
    fn reads_module_and_block_requires() {
        let go_mod = GoMod::parse(REAL_SHAPED);
        assert_eq!(
            go_mod.module.as_deref(),
            Some("github.com/odigos-io/odigos/opampserver")
        );
        assert_eq!(
            go_mod.requirement("google.golang.org/protobuf"),
            Requirement::Version("v1.36.11".into())
        );
        assert_eq!(
            go_mod.requirement("github.com/gogo/protobuf"),
            Requirement::Version("v1.3.2".into())
        );
        assert_eq!(
            go_mod.requirement("github.com/odigos-io/odigos/api"),
            Requirement::Replaced("../api".into())
        );
        assert_eq!(go_mod.requirement("example.com/none"), Requirement::Absent);
    }

    #[test]
    fn single_line_directives_and_version_replaces() {
        let go_mod = GoMod::parse(
            "module \"example.com/m\"\nrequire google.golang.org/protobuf v1.34.2 // indirect\n\
             replace google.golang.org/protobuf v1.34.2 => google.golang.org/protobuf v1.36.11\n",
        );
        assert_eq!(go_mod.module.as_deref(), Some("example.com/m"));
        assert_eq!(
            go_mod.requirement("google.golang.org/protobuf"),
            Requirement::Version("v1.36.11".into())
        );

        let other_version = GoMod::parse(
            "module m\nrequire google.golang.org/protobuf v1.34.2\n\
             replace google.golang.org/protobuf v1.30.0 => ../fork\n",
        );
        assert_eq!(
            other_version.requirement("google.golang.org/protobuf"),
            Requirement::Version("v1.34.2".into())
        );
    }
}
