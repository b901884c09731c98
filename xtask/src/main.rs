//! `cargo xtask <command>`: the project's automation. Run `cargo xtask --help`.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use xtask::baseline::Baseline;
use xtask::{generate, tools, workspace_root};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Odigos OpAMP project automation",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate gen/ (Go, Python, Java, JavaScript, Rust) from proto/ with the pinned tools,
    /// installing any that are missing into .tools/.
    Generate {
        /// Regenerate into a temporary folder and fail, listing every differing
        /// file, if gen/ is not exactly what generation produces. Writes nothing.
        /// Always covers every language.
        #[arg(long, conflicts_with = "lang")]
        check: bool,
        /// Regenerate only these languages' folders (comma-separated: go, python, java,
        /// js, rust), installing only their tools: buf needs Node.js always, python and
        /// java need Python 3, go needs Go. Default: all.
        #[arg(long, value_delimiter = ',', value_name = "LANG")]
        lang: Vec<generate::Lang>,
    },
    /// `buf lint`, then `buf breaking` against the previous commit of main.
    Lint,
    /// Everything CI runs: the generation check, lint, `cargo fmt --check`, clippy with
    /// warnings as errors, every test of the workspace on the current Kubernetes (v1.37),
    /// and the Kubernetes lifecycle, outage, RBAC and harness tests again on the oldest
    /// supported one (v1.20).
    Test,
    /// Copy the generated Go, Python and JavaScript code into clones of the Odigos
    /// repositories, reporting each file as added, changed or unchanged, and warning
    /// when a destination pins a protobuf runtime too old for it.
    #[command(group = clap::ArgGroup::new("destination").required(true).multiple(true))]
    CopyToOdigos {
        /// Root of a clone of odigos-io/odigos (gets opampserver/protobufs/*.pb.go).
        #[arg(long, value_name = "DIR", group = "destination")]
        odigos: Option<std::path::PathBuf>,
        /// Root of a clone of odigos-io/odigos-opentelemetry-python (gets opamp/*_pb2.py and .pyi).
        #[arg(long, value_name = "DIR", group = "destination")]
        python_agent: Option<std::path::PathBuf>,
        /// Root of a clone of odigos-io/opentelemetry-node (gets src/opamp/generated/*_pb.js and .d.ts).
        #[arg(long, value_name = "DIR", group = "destination")]
        node_agent: Option<std::path::PathBuf>,
        /// Write nothing; show a unified diff of every file that would change.
        #[arg(long, conflicts_with = "verify")]
        dry_run: bool,
        /// After copying, `go build` the Odigos module and load the Python and JavaScript
        /// code under each agent's pinned runtime.
        #[arg(long)]
        verify: bool,
    },
    /// Our server, an opamp-go peer and a bare hyper server side by side under the same
    /// simulated agents; writes bench/results/latest.json and BENCHMARKS.md's results.
    Bench(Box<xtask::bench::BenchArgs>),
    /// The shipped server binary (profile `dist`: LTO, stripped, static) and an OCI image
    /// from scratch around it, built with podman (installed with apt-get when missing);
    /// prints their sizes and the binary's start-up time to /readyz.
    Image {
        /// The image's name (default: odigos-opamp-server:<its Cargo version>).
        #[arg(long)]
        tag: Option<String>,
    },
    /// A Kubernetes control plane (etcd + kube-apiserver on 127.0.0.1) in the background,
    /// with deploy/'s CRDs and RBAC installed: the current Kubernetes (v1.37) by default,
    /// or the oldest the server supports (v1.20).
    Kube {
        #[command(subcommand)]
        action: KubeAction,
    },
}

#[derive(Subcommand)]
enum KubeAction {
    /// Start it (building etcd and kube-apiserver on first use, 5 to 7 min) and print
    /// `export KUBECONFIG=...`.
    Up {
        /// Which Kubernetes: `current` (v1.37.2, built from the Go module proxy; needs Go
        /// 1.26 or newer) or `oldest` (v1.20.2, built from Debian's source package), or
        /// their major.minor (`1.37`, `1.20`). Default: what ODIGOS_KUBE_VERSION says, else
        /// `current`.
        #[arg(long, value_name = "VERSION")]
        version: Option<xtask::kube::KubeVersion>,
    },
    /// Stop it and delete its folder (.cache/kube/run/).
    Down,
    /// Print `export KUBECONFIG=...` for the running one.
    Env,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    match cli.command {
        Cmd::Generate { check: true, .. } => check_cmd(&root),
        Cmd::Generate { check: false, lang } => generate_cmd(&root, &lang),
        Cmd::Lint => lint(&root),
        Cmd::Test => {
            check_cmd(&root)?;
            lint(&root)?;
            rust_habits(&root)?;
            cargo_test(&root)
        }
        Cmd::CopyToOdigos {
            odigos,
            python_agent,
            node_agent,
            dry_run,
            verify,
        } => {
            use xtask::copy_to_odigos::{Options, run};
            let options = Options {
                dry_run,
                verify,
                ..Options::for_workspace(&root, odigos, python_agent, node_agent)
            };
            run(&options, &mut std::io::stdout())?;
            Ok(())
        }
        Cmd::Bench(args) => Ok(xtask::bench::run(&root, &args)?),
        Cmd::Image { tag } => image(&root, tag),
        Cmd::Kube {
            action: KubeAction::Up { version },
        } => Ok(xtask::kube::daemon::up(version)?),
        Cmd::Kube {
            action: KubeAction::Down,
        } => Ok(xtask::kube::daemon::down()?),
        Cmd::Kube {
            action: KubeAction::Env,
        } => Ok(xtask::kube::daemon::env()?),
    }
}

/// Starts of the shipped binary timed by `cargo xtask image`.
const STARTUP_RUNS: usize = 7;

fn image(root: &Path, tag: Option<String>) -> Result<()> {
    use xtask::image;
    let tag = match tag {
        Some(tag) => tag,
        None => image::default_tag(root)?,
    };
    let podman = image::Podman::ensure()?;
    let built = image::build(root, &podman, &tag)?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "binary: {} ({}, static): {} bytes ({:.2} MiB)",
        built.binary.path.display(),
        built.binary.target,
        built.binary.size_bytes,
        mib(built.binary.size_bytes)
    );
    println!(
        "image:  {tag}: {} bytes ({:.2} MiB)",
        built.size_bytes,
        mib(built.size_bytes)
    );
    let devices = root.join("server").join("examples").join("devices.yaml");
    let startups = image::startup::measure(&built.binary.path, &devices, STARTUP_RUNS)?;
    println!(
        "start-up to /readyz (embedded, {} devices table, {STARTUP_RUNS} starts): median {:.1} ms, max {:.1} ms",
        devices.strip_prefix(root).unwrap_or(&devices).display(),
        startups.median().as_secs_f64() * 1e3,
        startups.max().as_secs_f64() * 1e3
    );
    Ok(())
}

fn generate_cmd(root: &Path, langs: &[generate::Lang]) -> Result<()> {
    let started = std::time::Instant::now();
    let mut langs = if langs.is_empty() {
        generate::Lang::ALL.to_vec()
    } else {
        langs.to_vec()
    };
    langs.sort_unstable();
    langs.dedup();
    let changes = generate::generate_langs(root, &langs)?;
    for change in &changes {
        println!("{change}");
    }
    println!(
        "gen/: {} file(s) updated in {:.1}s",
        changes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn check_cmd(root: &Path) -> Result<()> {
    generate::check(root, &root.join("gen"))?;
    println!("gen/ is up to date");
    Ok(())
}

fn lint(root: &Path) -> Result<()> {
    let tools = tools::ensure_codegen_tools(root)?;
    tools::run(Command::new(&tools.buf).arg("lint").current_dir(root))
        .context("buf lint found problems")?;
    println!("buf lint: ok");

    let (label, commit) = match xtask::baseline::breaking_baseline(root)? {
        Baseline::Commit { label, commit } => (label, commit),
        Baseline::NoEarlierSchema(why) => {
            println!("buf breaking: nothing to compare with ({why})");
            return Ok(());
        }
    };
    tools::run(
        Command::new(&tools.buf)
            .args(["breaking", "--against"])
            .arg(format!(".git#ref={commit}"))
            .current_dir(root),
    )
    .with_context(|| {
        format!("buf breaking against {label} ({commit}) found incompatible changes")
    })?;
    println!(
        "buf breaking: ok against {label} ({})",
        &commit[..12.min(commit.len())]
    );
    Ok(())
}

/// `cargo fmt --check` and clippy with warnings as errors, on the toolchain that
/// rust-toolchain.toml pins (so a newer toolchain's lints cannot fail CI by themselves).
fn rust_habits(root: &Path) -> Result<()> {
    let run = |args: &[&str], fix: &str| -> Result<()> {
        let status = xtask::cargo::command(root)
            .args(args)
            .status()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!("`cargo {}` failed ({status}): {fix}", args.join(" "));
        }
        Ok(())
    };
    run(
        &["fmt", "--all", "--check"],
        "run `cargo fmt --all` and commit the result",
    )?;
    println!("cargo fmt: ok");
    run(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        "fix what clippy reports above",
    )?;
    println!("cargo clippy: ok");
    Ok(())
}

/// [`xtask::suite::runs`]: the whole workspace on the current Kubernetes, then the
/// Kubernetes-heavy tests on the oldest supported one. Every run happens even after a
/// failure, and every test binary of a run even after a failure, so one run shows every
/// failure.
fn cargo_test(root: &Path) -> Result<()> {
    let mut failed = Vec::new();
    for run in xtask::suite::runs() {
        let passed = xtask::suite::execute(root, &run)
            .with_context(|| format!("running cargo test ({})", run.title))?;
        if !passed {
            failed.push(run.title);
        }
    }
    if !failed.is_empty() {
        bail!(
            "cargo test failed for {}; the failing tests are listed above",
            failed.join("; and for ")
        );
    }
    Ok(())
}
