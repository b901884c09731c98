//! The protoc plugin protocol: a `CodeGeneratorRequest` on stdin, a
//! `CodeGeneratorResponse` on stdout. Generator failures are reported in the
//! response's `error` field, which buf and protoc print next to the plugin name.

use std::io::{Read, Write};

use prost::Message;
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse, code_generator_response};

/// One generated file, with a path relative to the plugin's output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub name: String,
    pub content: String,
}

/// Plugin parameters, from `opt:` in `buf.gen.yaml` (`key=value,key=value`).
#[derive(Debug, Default, Clone)]
pub struct Parameters(Vec<(String, String)>);

impl Parameters {
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(|part| match part.split_once('=') {
                    Some((key, value)) => (key.trim().to_owned(), value.trim().to_owned()),
                    None => (part.to_owned(), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Names of parameters that are not in `known`, so typos in `buf.gen.yaml`
    /// fail loudly instead of being ignored.
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.0
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !known.contains(k))
            .collect()
    }
}

/// Reads the request, runs `generate`, writes the response. Returns the process
/// exit code: 0 whenever a response could be written (errors travel inside it).
pub fn run<E: std::fmt::Display>(
    generate: impl FnOnce(&CodeGeneratorRequest) -> Result<Vec<GeneratedFile>, E>,
) -> i32 {
    let mut input = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("reading CodeGeneratorRequest from stdin: {err}");
        return 1;
    }
    let response = match CodeGeneratorRequest::decode(input.as_slice()) {
        Ok(request) => respond(generate(&request)),
        Err(err) => respond::<String>(Err(format!(
            "stdin is not a CodeGeneratorRequest ({err}); this program is a protoc plugin, run it through `cargo xtask generate`"
        ))),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(&response.encode_to_vec())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("writing CodeGeneratorResponse to stdout: {err}");
            1
        }
    }
}

fn respond<E: std::fmt::Display>(result: Result<Vec<GeneratedFile>, E>) -> CodeGeneratorResponse {
    let supported_features = Some(code_generator_response::Feature::Proto3Optional as u64);
    match result {
        Ok(files) => CodeGeneratorResponse {
            supported_features,
            file: files
                .into_iter()
                .map(|f| code_generator_response::File {
                    name: Some(f.name),
                    content: Some(f.content),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        Err(err) => CodeGeneratorResponse {
            supported_features,
            error: Some(err.to_string()),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::Parameters;

    #[test]
    fn parameters_parse_pairs_and_flags() {
        let p = Parameters::parse("python=.tools/venv/bin/python, package=opamp,verbose");
        assert_eq!(p.get("python"), Some(".tools/venv/bin/python"));
        assert_eq!(p.get("package"), Some("opamp"));
        assert_eq!(p.get("verbose"), Some(""));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.unknown(&["python", "package"]), vec!["verbose"]);
    }

    #[test]
    fn later_parameters_win() {
        assert_eq!(Parameters::parse("a=1,a=2").get("a"), Some("2"));
    }
}
