//! Where a Python project pins a dependency, and the lowest version the pin admits.
//!
//! The Odigos Python agent has declared `protobuf` in three places over its
//! history: `pyproject.toml` `[project] dependencies` (today), `setup.py`
//! `install_requires`, and a pip-compiled `requirements.txt`. The first one
//! found, in that order, is the one that counts: it is what `pip install` of
//! the agent resolves against.

use std::path::Path;

use super::version::Version;

/// A requirement on one distribution, as the project wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The requirement text, e.g. `protobuf == 5.29.6`.
    pub requirement: String,
    /// Where it was found, e.g. `pyproject.toml [project] dependencies`.
    pub source: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a requirement this check reads (it reads ==, ===, ~=, >=, >, <, <=, != and ==X.* \
     specifiers, comma-separated)"
)]
pub struct UnsupportedSpecifier(pub String);

/// A file that may declare requirements: its name, how the report names the
/// place, and how to list the requirements in it.
type Source = (&'static str, &'static str, fn(&str) -> Vec<String>);

/// The first requirement on `distribution` in the project at `root`.
pub fn find(root: &Path, distribution: &str) -> std::io::Result<Option<Pin>> {
    let sources: [Source; 3] = [
        (
            "pyproject.toml",
            "pyproject.toml [project] dependencies",
            pyproject_dependencies,
        ),
        (
            "setup.py",
            "setup.py install_requires",
            setup_py_install_requires,
        ),
        ("requirements.txt", "requirements.txt", requirements_txt),
    ];
    for (file, source, requirements) in sources {
        let text = match std::fs::read_to_string(root.join(file)) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        if let Some(requirement) = requirements(&text)
            .into_iter()
            .find(|r| names(r, distribution))
        {
            return Ok(Some(Pin {
                requirement,
                source,
            }));
        }
    }
    Ok(None)
}

/// The lowest version `requirement` admits; `None` when nothing bounds it from below.
pub fn lowest(requirement: &str) -> Result<Option<Version>, UnsupportedSpecifier> {
    let unsupported = || UnsupportedSpecifier(requirement.to_owned());
    let without_marker = requirement.split(';').next().unwrap_or_default();
    let specifiers = without_marker
        .trim_start()
        .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || "._-".contains(c));
    // Extras (`protobuf[foo]`) and parentheses (`protobuf (>=5)`) carry no version.
    let specifiers = match specifiers.trim_start().strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .map(|(_, after)| after)
            .ok_or_else(unsupported)?,
        None => specifiers,
    };
    let specifiers = specifiers
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    if specifiers.trim_start().starts_with('@') {
        return Err(unsupported());
    }
    let mut lowest: Option<Version> = None;
    for clause in specifiers
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let operator_end = clause
            .find(|c: char| !"=~<>!".contains(c))
            .unwrap_or(clause.len());
        let (operator, version) = clause.split_at(operator_end);
        let version = version.trim();
        let bound = match operator {
            "<" | "<=" | "!=" => None,
            // An exclusive `>V` stands in for "just above V": safe when V itself is.
            "==" | "===" | "~=" | ">=" | ">" => {
                Some(Version::parse(version.trim_end_matches(".*")).ok_or_else(unsupported)?)
            }
            _ => return Err(unsupported()),
        };
        // Clauses intersect: nothing below the highest lower bound is admitted.
        if bound
            .as_ref()
            .is_some_and(|b| lowest.as_ref().is_none_or(|l| b > l))
        {
            lowest = bound;
        }
    }
    Ok(lowest)
}

/// Whether `requirement` is on `distribution` (names compare as PEP 503 normalises them).
fn names(requirement: &str, distribution: &str) -> bool {
    let name: String = requirement
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    normalise(&name) == normalise(distribution)
}

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The strings of `dependencies = [...]` in the `[project]` table.
fn pyproject_dependencies(text: &str) -> Vec<String> {
    let mut table = "";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && !trimmed.starts_with("[[") && trimmed.ends_with(']') {
            table = trimmed;
        } else if table == "[project]"
            && let Some(value) = trimmed.strip_prefix("dependencies")
            && value.trim_start().starts_with('=')
        {
            return array_strings(&text[offset..]);
        }
        offset += line.len();
    }
    Vec::new()
}

/// The strings of the `install_requires=[...]` argument.
fn setup_py_install_requires(text: &str) -> Vec<String> {
    match text.find("install_requires") {
        Some(start) => array_strings(&text[start..]),
        None => Vec::new(),
    }
}

/// Requirement lines, without comments, options and `--hash` suffixes.
fn requirements_txt(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .map(|line| line.split(" #").next().unwrap_or_default())
        .map(|line| line.split(" --").next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('-'))
        .map(str::to_owned)
        .collect()
}

/// Every quoted string in the first `[...]` of `text`, skipping `#` comments
/// (the array syntax TOML and Python share).
fn array_strings(text: &str) -> Vec<String> {
    let Some(open) = text.find('[') else {
        return Vec::new();
    };
    let mut strings = Vec::new();
    let mut chars = text[open + 1..].chars();
    while let Some(c) = chars.next() {
        match c {
            ']' => break,
            '#' => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' => {
                let mut value = String::new();
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match inner {
                        _ if escaped => {
                            value.push(inner);
                            escaped = false;
                        }
                        '\\' => escaped = true,
                        _ if inner == c => break,
                        _ => value.push(inner),
                    }
                }
                strings.push(value);
            }
            _ => {}
        }
    }
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low(requirement: &str) -> Option<String> {
        lowest(requirement).unwrap().map(|v| v.to_string())
    }

    #[test]
    fn lowest_of_common_specifiers() {
        assert_eq!(low("protobuf == 5.29.6").as_deref(), Some("5.29.6"));
        assert_eq!(low("protobuf==6.31.1").as_deref(), Some("6.31.1"));
        assert_eq!(low("protobuf>=5.29,<8").as_deref(), Some("5.29.0"));
        assert_eq!(low("protobuf ~= 5.29.0").as_deref(), Some("5.29.0"));
        assert_eq!(low("protobuf==5.29.*").as_deref(), Some("5.29.0"));
        assert_eq!(
            low("protobuf>4,>=5.28.3,!=5.29.0").as_deref(),
            Some("5.28.3")
        );
        assert_eq!(
            low("protobuf[extra] (>=5.29.0) ; python_version >= '3.9'").as_deref(),
            Some("5.29.0")
        );
        assert_eq!(low("protobuf"), None);
        assert_eq!(low("protobuf<7"), None);
        assert!(lowest("protobuf @ https://example.invalid/protobuf.whl").is_err());
        assert!(lowest("protobuf == latest").is_err());
    }

    #[test]
    fn finds_the_pin_in_pyproject_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[build-system]\nrequires = [\"protobuf==1.0\"]\n\n[project]\nname = \"agent\"\ndependencies = [\n    \
             \"uuid7 == 0.1.0\", # a comment with ] in it\n    'googleapis-common-protos == 1.66.0',\n    \
             \"protobuf == 5.29.6\",\n]\n\n[project.optional-dependencies]\ntest = [\"protobuf==9\"]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "protobuf==5.29.2\n").unwrap();
        let pin = find(dir.path(), "protobuf").unwrap().unwrap();
        assert_eq!(pin.requirement, "protobuf == 5.29.6");
        assert_eq!(pin.source, "pyproject.toml [project] dependencies");
    }

    #[test]
    fn falls_back_to_setup_py_then_requirements_txt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[build-system]\nrequires = [\"setuptools\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("setup.py"),
            "setup(\n    install_requires=[\n        # 'protobuf==1.0',\n        'Protobuf==6.31.1',\n    ],\n)\n",
        )
        .unwrap();
        assert_eq!(
            find(dir.path(), "protobuf").unwrap().unwrap().requirement,
            "Protobuf==6.31.1"
        );

        std::fs::remove_file(dir.path().join("setup.py")).unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "# pip-compile output\nprotobuf==5.29.2 \\\n    --hash=sha256:abc\n    # via\n    #   opentelemetry-proto\n",
        )
        .unwrap();
        let pin = find(dir.path(), "protobuf").unwrap().unwrap();
        assert_eq!(
            (pin.requirement.as_str(), pin.source),
            ("protobuf==5.29.2", "requirements.txt")
        );

        std::fs::remove_file(dir.path().join("requirements.txt")).unwrap();
        assert_eq!(find(dir.path(), "protobuf").unwrap(), None);
    }
}
