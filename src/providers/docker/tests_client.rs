//! Unit tests of the transport: the event-line splitter, API version negotiation, TCP
//! keepalive, and the kept connection of a [`Client`] against a small fake engine on a unix
//! socket (counting connections, or never answering).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use tokio::net::UnixListener;

use super::client::{
    ApiError, Client, Endpoint, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, MAX_API,
    MIN_API, keepalive, negotiate, parse_version,
};
use super::lines::{LineBuf, Lines, MAX_LINE, TooLong};

/// Every line `buf` has complete right now.
fn drain(buf: &mut LineBuf) -> Vec<Result<String, TooLong>> {
    std::iter::from_fn(|| buf.next_line())
        .map(|r| r.map(|l| String::from_utf8(l).unwrap()))
        .collect()
}

fn ok(lines: &[&str]) -> Vec<Result<String, TooLong>> {
    lines.iter().map(|l| Ok(l.to_string())).collect()
}

#[test]
fn a_line_split_across_frames_comes_out_whole() {
    let mut buf = LineBuf::new(MAX_LINE);
    buf.push(b"{\"Type\":");
    assert_eq!(drain(&mut buf), ok(&[]));
    buf.push(b"\"container\"");
    assert_eq!(drain(&mut buf), ok(&[]));
    buf.push(b"}\n{\"Ty");
    assert_eq!(drain(&mut buf), ok(&["{\"Type\":\"container\"}"]));
    buf.push(b"pe\":1}\n");
    assert_eq!(drain(&mut buf), ok(&["{\"Type\":1}"]));
}

#[test]
fn several_lines_in_one_frame_blank_lines_and_crlf() {
    let mut buf = LineBuf::new(MAX_LINE);
    buf.push(b"a\n\nb\r\n \t\r\n\r\nc\nd");
    assert_eq!(drain(&mut buf), ok(&["a", "b", "c"]));
    buf.push(b"\r");
    assert_eq!(drain(&mut buf), ok(&[]), "no line before its \\n");
    buf.push(b"\n");
    assert_eq!(drain(&mut buf), ok(&["d"]));
    assert_eq!(drain(&mut buf), ok(&[]));
}

#[test]
fn a_line_over_the_limit_is_an_error() {
    // Exactly at the limit is fine, also with CRLF.
    let mut buf = LineBuf::new(4);
    buf.push(b"abcd\r\nwxyz\n");
    assert_eq!(drain(&mut buf), ok(&["abcd", "wxyz"]));
    // Complete but too long.
    buf.push(b"abcde\n");
    assert_eq!(buf.next_line(), Some(Err(TooLong(4))));
    // Still without its end, once past the limit: no waiting for the rest.
    let mut buf = LineBuf::new(4);
    buf.push(b"ok\nabc");
    assert_eq!(drain(&mut buf), ok(&["ok"]));
    buf.push(b"de");
    assert_eq!(buf.next_line(), Some(Err(TooLong(4))));
    // The real limit.
    let mut buf = LineBuf::new(MAX_LINE);
    buf.push(&vec![b'x'; MAX_LINE]);
    assert_eq!(buf.next_line(), None);
    buf.push(b"x");
    assert_eq!(buf.next_line(), Some(Err(TooLong(MAX_LINE))));
}

#[tokio::test]
async fn lines_reads_frames_of_a_body() {
    let frames = ["{\"a\":1}\n{\"b\"", ":2}\r\n\n", "{\"c\":3}\n", "partial"];
    let body =
        StreamBody::new(futures_util::stream::iter(frames.map(|f| {
            Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(f.as_bytes())))
        })));
    let mut lines = Lines::new(body, "/events");
    let mut got = Vec::new();
    while let Some(line) = lines.next().await {
        got.push(String::from_utf8(line.unwrap()).unwrap());
    }
    // A last line without its end is not an event.
    assert_eq!(got, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);

    let huge = Bytes::from(vec![b'x'; MAX_LINE + 1]);
    let body = StreamBody::new(futures_util::stream::iter([Ok::<_, hyper::Error>(
        Frame::data(huge),
    )]));
    let mut lines = Lines::new(body, "/events");
    let err = lines.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("a line longer than"), "{err}");
}

#[test]
fn versions_parse_as_numbers() {
    assert_eq!(parse_version("1.41"), Some((1, 41)));
    assert_eq!(parse_version(" 1.9\n"), Some((1, 9)));
    assert_eq!(parse_version("2.0"), Some((2, 0)));
    for bad in [
        "", "1", "1.", ".1", "v1.41", "1.4.1", "+1.41", "-1.2", "1.x", "1 .2", "１.2",
    ] {
        assert_eq!(parse_version(bad), None, "{bad:?}");
    }
}

#[test]
fn negotiation_caps_at_the_newest_and_refuses_the_oldest() {
    let v = |s: &str| negotiate(s).map_err(|e| e.to_string());
    let at_least = format!("boma needs at least {}.{}", MIN_API.0, MIN_API.1);
    // The engine's own version when boma knows it.
    assert_eq!(v("1.41"), Ok((1, 41)));
    assert_eq!(v(&format!("{}.{}", MIN_API.0, MIN_API.1)), Ok(MIN_API));
    assert_eq!(v(&format!("{}.{}", MAX_API.0, MAX_API.1)), Ok(MAX_API));
    // Newer engines are spoken to in the newest version boma knows.
    assert_eq!(v(&format!("{}.{}", MAX_API.0, MAX_API.1 + 7)), Ok(MAX_API));
    assert_eq!(v("2.0"), Ok(MAX_API));
    // Older than boma reads: refused (1.9 is older than 1.24, as numbers).
    for old in ["1.23", "1.9", "1.0", "0.99"] {
        let err = v(old).unwrap_err();
        assert!(err.contains(&at_least) && err.contains(old), "{old}: {err}");
    }
    // Garbage is an error, not a version.
    for bad in ["", "latest", "1", "1.41-beta"] {
        assert!(
            matches!(negotiate(bad), Err(ApiError::BadVersion(ref s)) if s == bad),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn tcp_connections_get_keepalive() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    keepalive(&tcp);
    let sock = socket2::SockRef::from(&tcp);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
    assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
}

/// How the fake engine behaves.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    Engine,
    /// Never answers `/_ping` (a hung engine behind a live socket).
    HungPing,
    /// Closes every connection after one answer.
    NoKeepAlive,
}

/// A fake engine on a unix socket answering `/version`, `/_ping`, and anything else with `[]`.
/// Returns the socket's directory (keep it), its endpoint and the count of connections so far.
fn fake_engine(fake: Fake) -> (tempfile::TempDir, Endpoint, Arc<AtomicUsize>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<_>| async move {
                    let body = match req.uri().path() {
                        p if p.ends_with("/version") => r#"{"ApiVersion":"1.47"}"#,
                        p if p.ends_with("/_ping") && fake == Fake::HungPing => {
                            std::future::pending::<&str>().await
                        }
                        p if p.ends_with("/_ping") => "OK",
                        _ => "[]",
                    };
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(fake != Fake::NoKeepAlive)
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    (dir, Endpoint::Unix(path), accepted)
}

#[tokio::test]
async fn short_calls_share_one_connection() {
    let (_dir, endpoint, accepted) = fake_engine(Fake::Engine);
    let client = Client::connect(&endpoint, None).await.unwrap();
    assert_eq!(client.version(), format!("{}.{}", MAX_API.0, MAX_API.1));
    for _ in 0..5 {
        client.ping().await.unwrap();
        let list: Vec<serde_json::Value> = client.get("/containers/json").await.unwrap();
        assert!(list.is_empty());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");

    // Calls side by side each need a connection; afterwards one is kept and reused.
    let calls = (0..4).map(|_| client.get::<Vec<serde_json::Value>>("/containers/json"));
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    let after_burst = accepted.load(Ordering::SeqCst);
    assert!((2..=4).contains(&after_burst), "{after_burst}");
    client.ping().await.unwrap();
    client.ping().await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), after_burst);

    // The event stream has its own connection.
    let _events = client.lines("/events").await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), after_burst + 1);
}

#[tokio::test]
async fn a_connection_the_engine_closed_is_replaced() {
    let (_dir, endpoint, accepted) = fake_engine(Fake::NoKeepAlive);
    let client = Client::connect(&endpoint, None).await.unwrap();
    for _ in 0..5 {
        client.ping().await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_ping_left_unanswered_times_out_and_its_connection_is_dropped() {
    let (_dir, endpoint, accepted) = fake_engine(Fake::HungPing);
    let client = Client::connect(&endpoint, None).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let limit = Duration::from_millis(200);
    for _ in 0..2 {
        let r = client.call("/_ping", limit).await;
        assert!(
            matches!(r, Err(ApiError::Timeout(t)) if t == limit),
            "{r:?}"
        );
    }
    // The first try took the kept connection, the second a new one: a connection left
    // hanging is never used again.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let list: Vec<serde_json::Value> = client.get("/containers/json").await.unwrap();
    assert!(list.is_empty());
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
