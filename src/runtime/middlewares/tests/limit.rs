//! rateLimit (deterministic: time comes from `Ctx::now`), inFlightReq guards, the LRU table.

use std::time::{Duration, Instant};

use super::super::ip::SourceKey;
use super::super::limit::{Lru, MAX_SOURCES};
use super::*;

/// One request at `t0 + at_ms` from `peer` with `headers`; `Ok(delay)` or `Err(response)`.
fn hit(
    m: &Middleware,
    t0: Instant,
    at_ms: u64,
    peer: &str,
    headers: &[(&str, &str)],
) -> Result<Duration, Answer> {
    let mut c = ctx_from(peer, "http");
    c.now = t0 + Duration::from_millis(at_ms);
    let mut r = req("GET", "/", headers);
    match run(m, &mut r, &mut c) {
        None => Ok(c.delay),
        Some(resp) => Err(Box::new(resp)),
    }
}

fn rate_limit_state(m: &Middleware) -> usize {
    match &m.kind {
        Kind::RateLimit(rl) => rl.tracked(),
        _ => panic!("not a rateLimit"),
    }
}

#[test]
fn token_bucket_like_x_time_rate() {
    // (config, [(at ms, expected: Ok(delay ms) / Err((Retry-After, X-Retry-In)))])
    type Step = (u64, Result<u64, (&'static str, &'static str)>);
    let cases: &[(&str, &[Step])] = &[
        (
            "average = 10",
            &[
                (0, Ok(0)),
                (0, Err(("1", "100ms"))),
                (100, Ok(0)),
                (160, Ok(40)),
                (160, Err(("1", "140ms"))),
            ],
        ),
        (
            "average = 10\nburst = 3",
            &[
                (0, Ok(0)),
                (0, Ok(0)),
                (0, Ok(0)),
                (0, Err(("1", "100ms"))),
                (210, Ok(0)),
                (210, Ok(0)),
                (210, Err(("1", "90ms"))),
            ],
        ),
        // 1 req/s: waits up to 500 ms are shaped (delay asked of the core), longer ones refused.
        (
            "average = 1",
            &[
                (0, Ok(0)),
                (600, Ok(400)),
                (600, Err(("2", "1.4s"))),
                (2400, Ok(0)),
            ],
        ),
        (
            "average = 6\nperiod = \"1m\"",
            &[(0, Ok(0)), (5_000, Err(("5", "5s"))), (9_700, Ok(300))],
        ),
        (
            "average = 0\nburst = 1",
            &[(0, Ok(0)), (0, Ok(0)), (0, Ok(0))],
        ),
        ("average = -5", &[(0, Ok(0)), (0, Ok(0))]),
    ];
    for (cfg, steps) in cases {
        let m = mw(&format!("[rateLimit]\n{cfg}"));
        let t0 = Instant::now();
        for (i, (at, want)) in steps.iter().enumerate() {
            let got = hit(&m, t0, *at, "10.0.0.1", &[]);
            match (got, want) {
                (Ok(d), Ok(ms)) => assert_eq!(d.as_millis(), u128::from(*ms), "{cfg} step {i}"),
                (Err(resp), Err((retry_after, retry_in))) => {
                    assert_eq!(resp.status(), 429, "{cfg} step {i}");
                    assert_eq!(
                        header(resp.headers(), "retry-after"),
                        Some(*retry_after),
                        "{cfg} step {i}"
                    );
                    assert_eq!(
                        header(resp.headers(), "x-retry-in"),
                        Some(*retry_in),
                        "{cfg} step {i}"
                    );
                    assert_eq!(resp.body().as_ref(), b"Too Many Requests");
                }
                (got, want) => panic!(
                    "{cfg} step {i}: got {:?}, want {want:?}",
                    got.map_err(|r| r.status())
                ),
            }
        }
    }
}

#[test]
fn sources_are_separate() {
    let by_ip = mw("[rateLimit]\naverage = 1");
    let t0 = Instant::now();
    assert!(hit(&by_ip, t0, 0, "10.0.0.1", &[]).is_ok());
    assert!(hit(&by_ip, t0, 0, "10.0.0.1", &[]).is_err());
    assert!(hit(&by_ip, t0, 0, "10.0.0.2", &[]).is_ok());
    assert!(
        hit(&by_ip, t0, 0, "::ffff:10.0.0.2", &[]).is_err(),
        "mapped IPv4 is the same source"
    );

    let by_header = mw(
        "[rateLimit]\naverage = 1\n[rateLimit.sourceCriterion]\nrequestHeaderName = \"X-Api-Key\"",
    );
    assert!(hit(&by_header, t0, 0, "10.0.0.1", &[("x-api-key", "a")]).is_ok());
    assert!(hit(&by_header, t0, 0, "10.0.0.2", &[("x-api-key", "a")]).is_err());
    assert!(hit(&by_header, t0, 0, "10.0.0.1", &[("x-api-key", "b")]).is_ok());
    assert!(hit(&by_header, t0, 0, "10.0.0.1", &[]).is_ok());
    assert!(
        hit(&by_header, t0, 0, "10.0.0.3", &[]).is_err(),
        "no header: one shared source"
    );

    let by_host = mw("[rateLimit]\naverage = 1\n[rateLimit.sourceCriterion]\nrequestHost = true");
    assert!(hit(&by_host, t0, 0, "10.0.0.1", &[("host", "a.lan")]).is_ok());
    assert!(hit(&by_host, t0, 0, "10.0.0.2", &[("host", "a.lan")]).is_err());
    assert!(hit(&by_host, t0, 0, "10.0.0.2", &[("host", "b.lan")]).is_ok());

    let by_xff = mw("[rateLimit]\naverage = 1\n[rateLimit.sourceCriterion.ipStrategy]\ndepth = 1");
    assert!(
        hit(
            &by_xff,
            t0,
            0,
            "10.0.0.1",
            &[("x-forwarded-for", "1.1.1.1")]
        )
        .is_ok()
    );
    assert!(
        hit(
            &by_xff,
            t0,
            0,
            "10.0.0.1",
            &[("x-forwarded-for", "2.2.2.2")]
        )
        .is_ok()
    );
    assert!(
        hit(
            &by_xff,
            t0,
            0,
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1")]
        )
        .is_err()
    );
}

#[test]
fn idle_buckets_expire_and_the_table_is_bounded() {
    // 1 req/min, burst 5: TTL is 61 s, after which the bucket starts full again.
    let m = mw("[rateLimit]\naverage = 1\nperiod = \"1m\"\nburst = 5");
    let t0 = Instant::now();
    for _ in 0..5 {
        assert!(hit(&m, t0, 0, "10.0.0.1", &[]).is_ok());
    }
    assert!(hit(&m, t0, 1_000, "10.0.0.1", &[]).is_err());
    for _ in 0..5 {
        assert!(hit(&m, t0, 62_001, "10.0.0.1", &[]).is_ok());
    }

    let m = mw("[rateLimit]\naverage = 100");
    for i in 0..(MAX_SOURCES as u32 + 500) {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        assert!(hit(&m, t0, 0, &ip, &[]).is_ok());
    }
    assert_eq!(rate_limit_state(&m), MAX_SOURCES);
    // The oldest sources were evicted: the first one starts with a full bucket again.
    assert!(hit(&m, t0, 0, "10.0.0.0", &[]).is_ok());
}

#[test]
fn lru_evicts_least_recently_used() {
    let key = |s: &str| SourceKey::Text(s.into());
    let mut lru: Lru<u32> = Lru::new(2);
    *lru.get_or_insert_with(key("a"), || 1) += 0;
    *lru.get_or_insert_with(key("b"), || 2) += 0;
    assert_eq!(*lru.get_or_insert_with(key("a"), || 99), 1); // a is now most recent
    assert_eq!(*lru.get_or_insert_with(key("c"), || 3), 3); // evicts b
    assert_eq!(lru.len(), 2);
    assert_eq!(*lru.get_or_insert_with(key("a"), || 99), 1);
    assert_eq!(*lru.get_or_insert_with(key("b"), || 4), 4); // b was gone; evicts c
    assert_eq!(*lru.get_or_insert_with(key("c"), || 5), 5);
    let mut one: Lru<u32> = Lru::new(0);
    assert_eq!(*one.get_or_insert_with(key("x"), || 7), 7);
    assert_eq!(*one.get_or_insert_with(key("y"), || 8), 8);
    assert_eq!(one.len(), 1);
}

#[test]
fn rate_limit_configuration_errors() {
    for (src, want) in [
        ("[rateLimit]\naverage = 1\nperiod = \"-1s\"", "negative"),
        (
            "[rateLimit]\n[rateLimit.sourceCriterion]\nrequestHost = true\nrequestHeaderName = \"X\"",
            "mutually exclusive",
        ),
        (
            "[rateLimit]\n[rateLimit.sourceCriterion]\nrequestHost = true\n[rateLimit.sourceCriterion.ipStrategy]",
            "mutually exclusive",
        ),
        (
            "[rateLimit]\n[rateLimit.sourceCriterion]\nrequestHeaderName = \"a b\"",
            "requestHeaderName",
        ),
    ] {
        let e = compile_err(src);
        assert!(e.contains(want), "{src}: {e}");
    }
}

fn in_flight(m: &Middleware, host: &str, c: &mut Ctx) -> Option<http::Response<bytes::Bytes>> {
    run(m, &mut req("GET", "/", &[("host", host)]), c)
}

fn in_flight_tracked(m: &Middleware) -> usize {
    match &m.kind {
        Kind::InFlightReq(f) => f.tracked(),
        _ => panic!("not inFlightReq"),
    }
}

#[test]
fn in_flight_requests_are_released_by_guards() {
    let m = mw("[inFlightReq]\namount = 2");
    let (mut a, mut b, mut c) = (ctx(), ctx(), ctx());
    assert!(in_flight(&m, "a.lan", &mut a).is_none());
    assert!(in_flight(&m, "a.lan", &mut b).is_none());
    let refused = in_flight(&m, "a.lan", &mut c).expect("429");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.body().as_ref(), b"max connections reached: 2");
    assert!(c.guards.is_empty());
    assert!(
        in_flight(&m, "b.lan", &mut c).is_none(),
        "other host, other source"
    );
    drop(a);
    let mut d = ctx();
    assert!(in_flight(&m, "a.lan", &mut d).is_none());
    drop((b, c, d));
    assert_eq!(in_flight_tracked(&m), 0);

    let none = mw("[inFlightReq]\namount = 0");
    assert_eq!(
        in_flight(&none, "a.lan", &mut ctx()).map(|r| r.status().as_u16()),
        Some(429)
    );

    let by_ip = mw("[inFlightReq]\namount = 1\n[inFlightReq.sourceCriterion.ipStrategy]");
    let mut held = ctx();
    assert!(in_flight(&by_ip, "a.lan", &mut held).is_none());
    assert!(
        in_flight(&by_ip, "b.lan", &mut ctx()).is_some(),
        "same peer IP"
    );
    assert!(in_flight(&by_ip, "a.lan", &mut ctx_from("10.0.0.2", "http")).is_none());
}

#[test]
fn in_flight_table_is_bounded() {
    let m = mw("[inFlightReq]\namount = 5");
    let mut held = ctx();
    for i in 0..MAX_SOURCES {
        assert!(in_flight(&m, &format!("h{i}"), &mut held).is_none());
    }
    assert_eq!(in_flight_tracked(&m), MAX_SOURCES);
    assert!(
        in_flight(&m, "new.lan", &mut ctx()).is_some(),
        "a full table refuses new sources"
    );
    assert!(
        in_flight(&m, "h1", &mut held).is_none(),
        "known sources still count"
    );
    drop(held);
    assert_eq!(in_flight_tracked(&m), 0);
}
