//! The kubelet PodResources client and its snapshot cache against a scripted kubelet: the
//! real gRPC protocol on a temporary unix socket, with a kubelet that answers, one that is
//! down, and one that is slow.

#[path = "support/kubelet.rs"]
mod kubelet;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kubelet::ScriptedKubelet;
use odigos_opamp_server::kubelet::{
    DeviceCache, DeviceCacheOptions, DeviceLookupError, DeviceOwner, PodResourcesClient,
};

const TIMEOUT: Duration = Duration::from_millis(500);

fn cache(kubelet: &ScriptedKubelet, min_refresh_interval: Duration) -> Arc<DeviceCache> {
    let client = PodResourcesClient::new(kubelet.socket(), TIMEOUT).expect("client");
    Arc::new(DeviceCache::new(
        client,
        DeviceCacheOptions {
            min_refresh_interval,
        },
    ))
}

fn owner(pod: &str, container: &str) -> DeviceOwner {
    DeviceOwner {
        namespace: "shop".into(),
        pod: pod.into(),
        container: container.into(),
    }
}

#[tokio::test]
async fn a_device_is_found_through_the_kubelet_and_then_from_the_snapshot() {
    let kubelet = ScriptedKubelet::start();
    kubelet.allocate("shop", "coupon-1", "app", "dev-1");
    let devices = cache(&kubelet, Duration::from_millis(50));

    let first = devices.lookup("dev-1").await.expect("found");
    assert_eq!(first.owner, owner("coupon-1", "app"));
    assert!(first.fresh, "the first lookup asked the kubelet");
    assert_eq!(kubelet.calls(), 1);

    for _ in 0..20 {
        let hit = devices.lookup("dev-1").await.expect("found");
        assert!(!hit.fresh);
    }
    assert_eq!(kubelet.calls(), 1, "hits are answered from the snapshot");
}

#[tokio::test]
async fn a_miss_refreshes_once_and_finds_a_new_allocation() {
    let kubelet = ScriptedKubelet::start();
    kubelet.allocate("shop", "coupon-1", "app", "dev-1");
    let devices = cache(&kubelet, Duration::from_millis(50));
    devices.lookup("dev-1").await.expect("found");

    kubelet.allocate("shop", "coupon-2", "app", "dev-2");
    let found = devices
        .lookup("dev-2")
        .await
        .expect("found after a refresh");
    assert_eq!(found.owner, owner("coupon-2", "app"));
    assert_eq!(kubelet.calls(), 2);

    let unknown = devices.lookup("dev-404").await;
    assert_eq!(unknown, Err(DeviceLookupError::Unknown("dev-404".into())));
    assert_eq!(kubelet.calls(), 3, "exactly one refresh per miss");
}

#[tokio::test]
async fn a_burst_of_misses_shares_refreshes_at_most_one_per_interval() {
    let kubelet = ScriptedKubelet::start();
    let interval = Duration::from_millis(300);
    let devices = cache(&kubelet, interval);
    devices.lookup("warm-up").await.expect_err("unknown");
    assert_eq!(kubelet.calls(), 1);

    // 50 agents with unknown ids at once, and the device of one of them allocated now.
    kubelet.allocate("shop", "coupon-9", "app", "dev-9");
    let started = Instant::now();
    let lookups: Vec<_> = (0..50)
        .map(|i| {
            let devices = Arc::clone(&devices);
            let id = if i == 0 {
                "dev-9".to_owned()
            } else {
                format!("bogus-{i}")
            };
            tokio::spawn(async move { devices.lookup(&id).await })
        })
        .collect();
    let mut unknown = 0;
    for (i, lookup) in lookups.into_iter().enumerate() {
        match lookup.await.expect("lookup task") {
            Ok(found) => assert_eq!((i, found.owner), (0, owner("coupon-9", "app"))),
            Err(DeviceLookupError::Unknown(_)) => unknown += 1,
            Err(other) => panic!("lookup {i}: {other:?}"),
        }
    }
    assert_eq!(unknown, 49);
    let elapsed = started.elapsed();
    let calls = kubelet.calls() - 1;
    // Every miss needs a refresh that started after it; they all share the first or second.
    assert!(
        (1..=2).contains(&calls),
        "{calls} List calls for 50 concurrent misses"
    );
    assert!(
        elapsed >= interval.saturating_sub(Duration::from_millis(50)) || calls == 1,
        "refreshes kept {interval:?} apart ({elapsed:?})"
    );
    eprintln!("50 concurrent misses: {calls} kubelet List calls in {elapsed:?}");
}

#[tokio::test]
async fn a_kubelet_that_is_down_makes_lookups_unavailable_until_it_is_back() {
    let mut kubelet = ScriptedKubelet::start();
    kubelet.allocate("shop", "coupon-1", "app", "dev-1");
    let devices = cache(&kubelet, Duration::from_millis(20));
    kubelet.stop().await;

    let started = Instant::now();
    match devices.lookup("dev-1").await {
        Err(DeviceLookupError::Unavailable(reason)) => {
            assert!(reason.contains("kubelet"), "{reason}");
            eprintln!("kubelet down: {reason}");
        }
        other => panic!("expected Unavailable with the kubelet down, got {other:?}"),
    }
    assert!(
        started.elapsed() < TIMEOUT * 2,
        "failed fast: {:?}",
        started.elapsed()
    );

    kubelet.restart();
    let found = devices
        .lookup("dev-1")
        .await
        .expect("found once the kubelet is back");
    assert_eq!(found.owner, owner("coupon-1", "app"));
}

#[tokio::test]
async fn a_slow_kubelet_is_cut_off_at_the_deadline() {
    let kubelet = ScriptedKubelet::start();
    kubelet.allocate("shop", "coupon-1", "app", "dev-1");
    kubelet.set_delay(TIMEOUT * 4);
    let devices = cache(&kubelet, Duration::from_millis(20));

    let started = Instant::now();
    let answer = devices.lookup("dev-1").await;
    let elapsed = started.elapsed();
    assert!(
        matches!(&answer, Err(DeviceLookupError::Unavailable(r)) if r.contains("longer than") || r.contains("imeout") || r.contains("deadline")),
        "{answer:?}"
    );
    assert!(
        elapsed < TIMEOUT + Duration::from_millis(300),
        "cut off after {elapsed:?}"
    );

    kubelet.set_delay(Duration::ZERO);
    let found = devices
        .lookup("dev-1")
        .await
        .expect("found once it answers in time");
    assert_eq!(found.owner, owner("coupon-1", "app"));
}

#[tokio::test]
async fn a_stale_answer_is_rechecked_with_a_fresh_snapshot() {
    let kubelet = ScriptedKubelet::start();
    kubelet.allocate("shop", "old-pod", "app", "dev-1");
    let devices = cache(&kubelet, Duration::from_millis(20));
    devices.lookup("dev-1").await.expect("found");

    // The old pod is gone and the kubelet gave its device to a new one.
    kubelet.clear();
    kubelet.allocate("shop", "new-pod", "app", "dev-1");
    let cached = devices.lookup("dev-1").await.expect("cached");
    assert_eq!(
        (cached.owner.pod.as_str(), cached.fresh),
        ("old-pod", false)
    );
    let fresh = devices.lookup_fresh("dev-1").await.expect("fresh");
    assert_eq!((fresh.owner.pod.as_str(), fresh.fresh), ("new-pod", true));
}
