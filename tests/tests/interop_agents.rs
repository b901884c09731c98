//! Our agents, one per language on that language's generated code, each play
//! every Odigos agent profile against the server (see
//! `odigos_opamp_tests::interop::conversation` for the steps and checks).
//! For one profile every language must send the same request bytes and get
//! the same response bytes; insta pins the requests, the responses and the
//! server's record of the agent, per profile and per language.

use std::path::Path;

use odigos_opamp_tests::interop::agents::{GeneratedAgent, OdigosProfile};
use odigos_opamp_tests::interop::conversation::{self, Conversation};
use odigos_opamp_tests::interop::{self, InteropError};

fn every_language_plays(profile: &OdigosProfile) {
    let runtime = interop::runtime().unwrap();
    let rust_binary = Path::new(env!("CARGO_BIN_EXE_odigos-test-agent"));
    // In parallel: installs serialise on xtask's lock, each run has its own
    // server and tap.
    let results: Vec<(GeneratedAgent, Result<Conversation, InteropError>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = GeneratedAgent::ALL
                .map(|agent| {
                    let handle = runtime.handle();
                    scope.spawn(move || {
                        let run = agent
                            .command(rust_binary)
                            .and_then(|command| conversation::run(handle, agent, command, profile));
                        (agent, run)
                    })
                })
                .into_iter()
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
    let mut failures = Vec::new();
    let mut conversations = Vec::new();
    for (agent, result) in results {
        match result {
            Ok(conversation) => conversations.push(conversation),
            Err(error) => failures.push(format!("{agent} playing {}: {error}", profile.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    same_bytes_in_every_language(&conversations);

    for conversation in &conversations {
        let name = |what: &str| {
            format!(
                "generated__{}__{}__{what}",
                profile.name,
                conversation.agent.key()
            )
        };
        let description = format!("{} playing {}", conversation.agent, profile.name);
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => description.as_str(),
        }, {
            insta::assert_json_snapshot!(name("requests"), conversation.requests_snapshot().unwrap());
            insta::assert_json_snapshot!(name("responses"), conversation.responses_snapshot().unwrap());
            insta::assert_json_snapshot!(name("record"), conversation.record_snapshot());
        });
    }
}

/// Every language's request (and response) bytes equal Rust's, exchange by
/// exchange; a mismatch names the language, the step and the first byte.
fn same_bytes_in_every_language(conversations: &[Conversation]) {
    let reference = conversations
        .iter()
        .find(|c| c.agent == GeneratedAgent::Rust)
        .unwrap();
    let bodies = |c: &Conversation| (c.request_bodies().unwrap(), c.response_bodies().unwrap());
    let (rust_requests, rust_responses) = bodies(reference);
    let mut problems = Vec::new();
    for conversation in conversations {
        let (requests, responses) = bodies(conversation);
        for (what, ours, theirs) in [
            ("request", &rust_requests, &requests),
            ("response", &rust_responses, &responses),
        ] {
            if ours.len() != theirs.len() {
                problems.push(format!(
                    "{}: {} {what}s, rust {}",
                    conversation.agent,
                    theirs.len(),
                    ours.len()
                ));
                continue;
            }
            for ((step, _), (a, b)) in conversation.exchanges.iter().zip(ours.iter().zip(theirs)) {
                if a != b {
                    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                    problems.push(format!(
                        "{} {what} of step {step} differs from rust's at byte {at} ({} vs {} bytes):\n  rust: {}\n  {}: {}",
                        conversation.agent,
                        a.len(),
                        b.len(),
                        hex::encode(&a[at.saturating_sub(8)..a.len().min(at + 24)]),
                        conversation.agent.key(),
                        hex::encode(&b[at.saturating_sub(8)..b.len().min(at + 24)]),
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn odigos_python_agent_conversation_in_every_language() {
    every_language_plays(&OdigosProfile::python());
}

#[test]
fn odigos_node_agent_conversation_in_every_language() {
    every_language_plays(&OdigosProfile::node());
}
