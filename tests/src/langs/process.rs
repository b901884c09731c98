//! Running a language program: stdin in, stdout out, a readable error otherwise.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::runtime::LangError;

/// Runs `cmd` with `input` on stdin; a non-zero exit is an error carrying
/// both output streams.
pub fn run_with_input(label: &str, cmd: &mut Command, input: &[u8]) -> Result<Output, LangError> {
    let described = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LangError::Io {
            context: format!("{label}: starting {described}"),
            source,
        })?;
    let mut stdin = child.stdin.take();
    // Feed stdin from another thread so a program that writes before it has
    // read everything cannot deadlock against us.
    let output = std::thread::scope(|scope| {
        // A write error (the program exited early) shows up as its exit status.
        scope.spawn(move || stdin.as_mut().map(|s| s.write_all(input)));
        child.wait_with_output()
    });
    let output = output.map_err(|source| LangError::Io {
        context: format!("{label}: waiting for {cmd:?}"),
        source,
    })?;
    check(label, cmd, output)
}

/// `cmd`'s output, or an error with everything it printed when it failed.
pub fn run(label: &str, cmd: &mut Command) -> Result<Output, LangError> {
    let output = cmd.output().map_err(|source| LangError::Io {
        context: format!("{label}: starting {cmd:?}"),
        source,
    })?;
    check(label, cmd, output)
}

fn check(label: &str, cmd: &Command, output: Output) -> Result<Output, LangError> {
    if output.status.success() {
        return Ok(output);
    }
    Err(LangError::Failed {
        runtime: label.to_owned(),
        command: format!("{cmd:?}"),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}
