//! A `tcp://` engine whose traffic is dropped without a word (a half-open connection: nothing
//! is closed, nothing answers), through the real binary and a real Docker engine behind a TCP
//! front the test controls. boma must keep serving the last routes, notice (its watchdog pings
//! the engine while the event stream is silent), report the engine unreachable, and follow the
//! engine again once traffic flows, picking up a container started meanwhile.
//!
//! The watchdog's period is fixed (15 s plus a 5 s ping timeout), so the waits here are
//! generous bounds, not timings.

mod docker_support;
mod support;

use std::time::Duration;

use docker_support::{Container, EngineFront, Spec, unique};
use support::{Boma, Client, eventually};

/// Longest wait for anything the watchdog has to notice first.
const BOUND: Duration = Duration::from_secs(60);

/// A boma watching the engine at `endpoint` (only this test's containers).
fn boma(tag: &str, endpoint: &str) -> Boma {
    docker_support::boma_watching(tag, Some(endpoint), "", "")
}

/// A whoami container routed on `Host(host)`, seen only by the boma of `tag`.
fn routed_container(tag: &str, router: &str, host: &str) -> Container {
    let rule_key = format!("traefik.http.routers.{router}.rule");
    let rule = format!("Host(`{host}`)");
    Container::run(Spec {
        labels: vec![("boma.test", tag), (&rule_key, &rule)],
        expose: vec![80],
        ..Spec::default()
    })
}

/// The status `host` answers on `web`.
async fn status(boma: &Boma, client: &Client, host: &str) -> u16 {
    client.get(boma.addr("web"), host, "/").await.status
}

/// Wait (up to `limit`) until `host` answers `want`; returns the body.
async fn wait_status(
    boma: &Boma,
    client: &Client,
    host: &str,
    want: u16,
    limit: Duration,
) -> String {
    let addr = boma.addr("web");
    eventually(limit, || async {
        let r = client.get(addr, host, "/").await;
        (r.status == want).then_some(r.body)
    })
    .await
    .unwrap_or_else(|| panic!("{host} never answered {want}; boma log:\n{}", boma.stderr()))
}

/// The problems the API lists, as text.
async fn problems(boma: &Boma, client: &Client) -> String {
    let r = client
        .get(boma.addr("traefik"), "api", "/api/problems")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_engine_is_noticed_and_followed_again() {
    let tag = unique("hole");
    let front = EngineFront::start().await;
    let first = routed_container(&tag, "first", "first.test");
    let boma = boma(&tag, &front.endpoint());
    let client = Client::new();
    let body = wait_status(&boma, &client, "first.test", 200, Duration::from_secs(20)).await;
    assert_eq!(body.lines().next(), Some(first.name.as_str()));
    assert!(
        !problems(&boma, &client)
            .await
            .contains("cannot reach the engine")
    );

    // Traffic to the engine is dropped; a container starts meanwhile.
    front.black_hole();
    let second = routed_container(&tag, "second", "second.test");
    assert_eq!(status(&boma, &client, "first.test").await, 200);

    // The watchdog notices the silent engine and reports it (on a busy engine, a call in
    // flight when traffic stopped may time out first); the last routes keep serving.
    let reported = eventually(BOUND, || async {
        (problems(&boma, &client).await)
            .contains("cannot reach the engine")
            .then_some(())
    })
    .await;
    assert!(
        reported.is_some(),
        "the black-holed engine was never noticed; boma log:\n{}",
        boma.stderr()
    );
    assert_eq!(status(&boma, &client, "first.test").await, 200);
    assert_eq!(status(&boma, &client, "second.test").await, 404);

    // Traffic flows again (the black-holed connections stay dead): a new session lists the
    // engine and the container started during the black hole is routed.
    front.forward();
    let body = wait_status(&boma, &client, "second.test", 200, BOUND).await;
    assert_eq!(body.lines().next(), Some(second.name.as_str()));
    assert_eq!(status(&boma, &client, "first.test").await, 200);
    let cleared = eventually(Duration::from_secs(10), || async {
        (!problems(&boma, &client)
            .await
            .contains("cannot reach the engine"))
        .then_some(())
    })
    .await;
    assert!(
        cleared.is_some(),
        "the problem stays after the engine is back"
    );
}
