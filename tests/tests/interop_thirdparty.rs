//! Three third-party OpAMP clients, at pinned versions, against the server
//! (see `odigos_opamp_tests::interop::thirdparty` for the scenario and its
//! checks). insta pins one request and response of each kind and the
//! server's record, per client.

use odigos_opamp_tests::interop;
use odigos_opamp_tests::interop::thirdparty::{self, ThirdPartyClient};

fn scenario(client: ThirdPartyClient) {
    let runtime = interop::runtime().unwrap();
    let run = client
        .command()
        .and_then(|command| thirdparty::run(runtime.handle(), client, command))
        .unwrap_or_else(|error| panic!("{client}: {error}"));
    let name = |what: &str| format!("thirdparty__{}__{what}", client.key());
    let description = format!("{client}: remote config, APPLIED, heartbeats, stop");
    insta::with_settings!({
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => description.as_str(),
    }, {
        insta::assert_json_snapshot!(name("requests"), run.requests_snapshot().unwrap());
        insta::assert_json_snapshot!(name("responses"), run.responses_snapshot().unwrap());
        insta::assert_json_snapshot!(name("record"), run.record_snapshot());
    });
}

#[test]
fn opamp_go_http_client() {
    scenario(ThirdPartyClient::OpampGo);
}

#[test]
fn opentelemetry_opamp_client_from_pypi() {
    scenario(ThirdPartyClient::OtelPython);
}

#[test]
fn elastic_opamp_client_node_from_npm() {
    scenario(ThirdPartyClient::ElasticNode);
}

/// The committed manifests pin exactly the versions the tests name.
#[test]
fn the_committed_manifests_pin_the_third_party_clients() {
    let folder = odigos_opamp_tests::tests_dir().join("thirdparty");
    let read = |path: &str| std::fs::read_to_string(folder.join(path)).unwrap();
    let go_mod = read("opamp-go/go.mod");
    let opamp_go = format!(
        "require github.com/open-telemetry/opamp-go {}\n",
        thirdparty::OPAMP_GO
    );
    assert!(go_mod.contains(&opamp_go), "opamp-go/go.mod:\n{go_mod}");
    assert!(read("opamp-go/go.sum").contains(&format!(
        "github.com/open-telemetry/opamp-go {} h1:",
        thirdparty::OPAMP_GO
    )));
    let requirements = read("otel-python/requirements.txt");
    let pins: Vec<&str> = requirements
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(
        pins.iter().all(|l| l.contains("==")),
        "every requirement is pinned: {pins:?}"
    );
    assert!(
        pins.contains(
            &format!(
                "opentelemetry-opamp-client=={}",
                thirdparty::OTEL_OPAMP_CLIENT
            )
            .as_str()
        )
    );
    let package: serde_json::Value =
        serde_json::from_str(&read("elastic-node/package.json")).unwrap();
    assert_eq!(
        package["dependencies"]["@elastic/opamp-client-node"],
        thirdparty::ELASTIC_OPAMP_CLIENT
    );
    let lock: serde_json::Value =
        serde_json::from_str(&read("elastic-node/package-lock.json")).unwrap();
    assert_eq!(
        lock["packages"]["node_modules/@elastic/opamp-client-node"]["version"],
        thirdparty::ELASTIC_OPAMP_CLIENT
    );
    assert!(
        !read("elastic-node/package-lock.json").contains("\"resolved\""),
        "the lockfile names no registry"
    );
}
