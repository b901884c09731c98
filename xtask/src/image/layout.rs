//! What the image is: its base, where the binary goes, its user, its ports, its entrypoint.
//! `cargo xtask image` writes its Containerfile from [`Layout::shipped`]; the final stage of
//! `deploy/Dockerfile` (for CI systems with BuildKit) is read back and must say the same.

use std::fmt::Write as _;

/// An image layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `scratch`: the binary is static and needs no file of a base image.
    pub base: String,
    /// Where the binary is, and the whole entrypoint.
    pub binary: String,
    /// `uid:gid`.
    pub user: String,
    pub ports: Vec<u16>,
    pub entrypoint: Vec<String>,
}

/// The non-root user the image runs as: 65532, distroless's `nonroot`, a uid no host user
/// has. The odiglet DaemonSet overrides it (see deploy/daemonset-container.yaml).
pub const UID: u32 = 65532;
pub const GID: u32 = 65532;
/// The agents' port and the admin port (the server's defaults).
pub const AGENT_PORT: u16 = 4320;
pub const ADMIN_PORT: u16 = 4321;
pub const BINARY_PATH: &str = "/usr/local/bin/odigos-opamp-server";
/// The name of the binary in the build context of [`Layout::containerfile`].
pub const CONTEXT_BINARY: &str = "odigos-opamp-server";

impl Layout {
    /// The layout this project ships.
    pub fn shipped() -> Layout {
        Layout {
            base: "scratch".into(),
            binary: BINARY_PATH.into(),
            user: format!("{UID}:{GID}"),
            ports: vec![AGENT_PORT, ADMIN_PORT],
            entrypoint: vec![BINARY_PATH.into()],
        }
    }

    /// A Containerfile that copies [`CONTEXT_BINARY`] from its build context into this
    /// layout. The file keeps its mode (0755) and belongs to root: the user cannot change it.
    pub fn containerfile(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = writeln!(text, "# Written by `cargo xtask image`.");
        let _ = writeln!(text, "FROM {}", self.base);
        let _ = writeln!(text, "COPY {CONTEXT_BINARY} {}", self.binary);
        let _ = writeln!(text, "USER {}", self.user);
        let _ = writeln!(text, "EXPOSE {}", ports.join(" "));
        let _ = writeln!(
            text,
            "ENTRYPOINT {}",
            serde_json::to_string(&self.entrypoint).unwrap_or_default()
        );
        text
    }

    /// The layout of a Dockerfile's final stage: its `FROM`, the destination of its one
    /// `COPY`, `USER`, `EXPOSE` and the exec-form `ENTRYPOINT`.
    pub fn of_dockerfile(text: &str) -> Result<Layout, LayoutError> {
        let instructions = instructions(text);
        let last_from = instructions
            .iter()
            .rposition(|(keyword, _)| keyword == "FROM")
            .ok_or(LayoutError::Missing("FROM"))?;
        let stage = &instructions[last_from..];
        let one = |keyword: &'static str| -> Result<&str, LayoutError> {
            let mut found = stage.iter().filter(|(k, _)| k == keyword);
            match (found.next(), found.next()) {
                (Some((_, arguments)), None) => Ok(arguments.as_str()),
                (None, _) => Err(LayoutError::Missing(keyword)),
                (Some(_), Some(_)) => Err(LayoutError::Repeated(keyword)),
            }
        };
        let base = one("FROM")?
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let binary = one("COPY")?
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned();
        let ports = one("EXPOSE")?
            .split_whitespace()
            .map(|p| p.trim_end_matches("/tcp").parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| LayoutError::Unreadable("EXPOSE"))?;
        let entrypoint = serde_json::from_str::<Vec<String>>(one("ENTRYPOINT")?)
            .map_err(|_| LayoutError::Unreadable("ENTRYPOINT (exec form, a JSON list)"))?;
        Ok(Layout {
            base,
            binary,
            user: one("USER")?.to_owned(),
            ports,
            entrypoint,
        })
    }
}

/// Why a Dockerfile's final stage could not be read as a layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("the final stage has no {0} instruction")]
    Missing(&'static str),
    #[error("the final stage has more than one {0} instruction")]
    Repeated(&'static str),
    #[error("the final stage's {0} cannot be read")]
    Unreadable(&'static str),
}

/// `(KEYWORD, arguments)` of each instruction: comments dropped, continued lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        joined.push(current);
    }
    joined
        .into_iter()
        .filter_map(|instruction| {
            let (keyword, arguments) = instruction.trim().split_once(char::is_whitespace)?;
            Some((keyword.to_ascii_uppercase(), arguments.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_dockerfile_builds_the_shipped_layout() {
        let path = crate::workspace_root().join("deploy").join("Dockerfile");
        let text = std::fs::read_to_string(&path).expect("deploy/Dockerfile");
        assert_eq!(
            Layout::of_dockerfile(&text).expect("a readable final stage"),
            Layout::shipped(),
            "deploy/Dockerfile's final stage and `cargo xtask image` must build the same layout"
        );
    }

    #[test]
    fn the_containerfile_reads_back_as_its_layout() {
        let shipped = Layout::shipped();
        assert_eq!(Layout::of_dockerfile(&shipped.containerfile()), Ok(shipped));
    }

    #[test]
    fn only_the_final_stage_counts_and_continuations_are_joined() {
        let text = "FROM rust AS build\nUSER 0\nRUN a \\\n  b\n# comment\n\
                    FROM scratch\nCOPY --from=build /out/x /x\nUSER 1:1\n\
                    EXPOSE 1/tcp \\\n 2\nENTRYPOINT [\"/x\", \"--flag\"]\n";
        let layout = Layout::of_dockerfile(text).expect("layout");
        assert_eq!(layout.base, "scratch");
        assert_eq!(layout.binary, "/x");
        assert_eq!(layout.user, "1:1");
        assert_eq!(layout.ports, [1, 2]);
        assert_eq!(layout.entrypoint, ["/x", "--flag"]);
        assert_eq!(
            Layout::of_dockerfile("FROM scratch\nCOPY a /a\nEXPOSE 1\nENTRYPOINT [\"/a\"]"),
            Err(LayoutError::Missing("USER"))
        );
    }
}
