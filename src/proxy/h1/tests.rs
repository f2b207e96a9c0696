//! The HTTP/1 client against scripted servers on loopback: framing, chunked decoding, interim
//! answers, keep-alive and the retry on a connection the server closed while it was idle.

use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request, StatusCode, request};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn head_of(bytes: &[u8]) -> ResponseHead {
    parse(bytes, false)
}

fn parse(bytes: &[u8], pass: bool) -> ResponseHead {
    let mut buf = BytesMut::from(bytes);
    let head = parse_head(&mut buf, pass)
        .unwrap()
        .expect("a complete head");
    assert!(buf.is_empty(), "the head is consumed");
    head
}

#[test]
fn request_heads() {
    let target = Target {
        authority: &"10.0.0.2:8080".parse().unwrap(),
        path_prefix: "",
        extra: &[],
        response_timeout: None,
        pass_fields: false,
    };
    let mut out = Vec::new();
    encode_head(&parts("GET", "/a?b=1", &[("x-a", "1")]), &target, &mut out);
    assert_eq!(
        out,
        b"GET /a?b=1 HTTP/1.1\r\nhost: 10.0.0.2:8080\r\nx-a: 1\r\n\r\n"
    );
    // No Host from the client: the server's, without the default port (as hyper-util).
    let port80 = Target {
        authority: &"app:80".parse().unwrap(),
        path_prefix: "",
        extra: &[],
        response_timeout: None,
        pass_fields: false,
    };
    out.clear();
    encode_head(&parts("GET", "/", &[]), &port80, &mut out);
    assert_eq!(out, b"GET / HTTP/1.1\r\nhost: app\r\n\r\n");

    let prefixed = Target {
        authority: &"s".parse().unwrap(),
        path_prefix: "/base",
        extra: &[],
        response_timeout: None,
        pass_fields: false,
    };
    out.clear();
    encode_head(
        &parts("POST", "/x", &[("host", "app.lan")]),
        &prefixed,
        &mut out,
    );
    assert_eq!(
        out,
        b"POST /base/x HTTP/1.1\r\nhost: app.lan\r\ncontent-length: 0\r\n\r\n"
    );
    // Fields kept beside the head follow its own.
    let with_extra = Target {
        extra: &[("x-forwarded-proto", b"http"), ("x-real-ip", b"10.0.0.9")],
        ..prefixed
    };
    out.clear();
    encode_head(&parts("GET", "/", &[("host", "h")]), &with_extra, &mut out);
    assert_eq!(
        out,
        b"GET /base/ HTTP/1.1\r\nhost: h\r\nx-forwarded-proto: http\r\nx-real-ip: 10.0.0.9\r\n\r\n"
    );
}

#[test]
fn response_framing() {
    let get = Method::GET;
    let f = |bytes: &[u8]| framing(&get, &head_of(bytes));
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert!(f(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n").is_err());
    assert!(f(b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n").is_err());
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        Ok(Framing::Empty)
    );
    assert_eq!(
        f(b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"),
        Ok(Framing::Empty)
    );
    assert_eq!(f(b"HTTP/1.1 304 Not Modified\r\n\r\n"), Ok(Framing::Empty));
    // Transfer-Encoding wins over Content-Length; only a final `chunked` is chunked.
    let chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\ncontent-length: 3\r\n\r\n";
    assert_eq!(f(chunked), Ok(Framing::Chunked));
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
        Ok(Framing::Close)
    );
    assert_eq!(f(b"HTTP/1.0 200 OK\r\n\r\n"), Ok(Framing::Close));
    assert!(f(b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    let head = head_of(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    assert_eq!(framing(&Method::HEAD, &head), Ok(Framing::Empty));
}

#[test]
fn keep_alive_rules() {
    assert!(keeps_alive(&head_of(b"HTTP/1.1 200 OK\r\n\r\n")));
    assert!(!keeps_alive(&head_of(
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\n\r\n"
    )));
    assert!(!keeps_alive(&head_of(
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n"
    )));
}

#[test]
fn persistence_fields_are_left_out_and_others_kept() {
    // Connection naming only persistence: neither it nor Keep-Alive reaches the map.
    let head = head_of(
        b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nx: 1\r\n\r\n",
    );
    let names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x"]);
    assert!(keeps_alive(&head));
    // Naming another field (or upgrade): all kept, for the hop-by-hop step to read.
    let head = head_of(
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive, x-secret\r\nkeep-alive: timeout=5\r\nx-secret: 1\r\n\r\n",
    );
    assert_eq!(head.headers.len(), 3, "{:?}", head.headers);
    assert!(!head.said.close);
    let head = head_of(b"HTTP/1.1 101 Switching\r\nconnection: Upgrade\r\nupgrade: ws\r\n\r\n");
    assert_eq!(head.headers.get(header::CONNECTION).unwrap(), "Upgrade");
    let many = b"HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: close\r\nkeep-alive: a\r\nkeep-alive: b\r\n\r\n";
    let head = head_of(many);
    assert!(head.headers.is_empty());
    assert!(head.said.close && !keeps_alive(&head));
}

/// The client-facing head of `raw` as the server side writes it: through the map (and the
/// proxy's hop-by-hop step, and the Content-Length the client drops under Transfer-Encoding) or
/// from the passed lines. Its lines sorted (the map groups a name's values), `date` left out.
fn client_head(raw: &[u8], pass: bool) -> Vec<String> {
    let mut head = parse(raw, pass);
    assert_eq!(
        head.passed.is_some(),
        pass,
        "{}",
        String::from_utf8_lossy(raw)
    );
    let len = match framing(&Method::GET, &head).unwrap() {
        Framing::Empty => server::BodyLen::Empty,
        Framing::Length(n) => server::BodyLen::Known(n),
        Framing::Chunked | Framing::Close => server::BodyLen::Unknown,
    };
    if head.said.transfer_encoding {
        head.headers.remove(header::CONTENT_LENGTH);
    }
    crate::proxy::forward::strip_response_hop_by_hop(&mut head.headers);
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = head.status;
    parts.headers = head.headers;
    let answer = server::Answer {
        parts,
        passed: head.passed,
    };
    let mut out = Vec::new();
    server::encode_response(&mut out, answer, false, len, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<String> = (text.lines().map(str::to_string))
        .filter(|l| !l.starts_with("date: ") || l.contains("12:00:00"))
        .collect();
    lines.sort();
    lines
}

#[test]
fn passed_fields_reach_the_client_as_the_map_does() {
    let heads: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nSet-Cookie: a=1\r\nX-B: 2\r\nset-cookie: b=2\r\nTrailer: x-t\r\nTE: trailers\r\nProxy-Authenticate: Basic\r\nProxy-Connection: x\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nX-Tab: a\tb\r\nX-Obs: caf\xc3\xa9\r\nX-Empty:\r\n\r\n",
    ];
    for raw in heads {
        assert_eq!(client_head(raw, false), client_head(raw, true));
    }
    let first = client_head(heads[0], true);
    assert!(first.contains(&"server: nginx".to_string()), "{first:?}");
    assert!(first.contains(&"date: Sun, 29 Nov 2026 12:00:00 GMT".to_string()));
    assert!(!first.iter().any(|l| l.starts_with("connection")));
    // Connection naming a field: not passed (the map and the hop-by-hop step take it).
    let names =
        b"HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: 1\r\nContent-Length: 0\r\n\r\n";
    assert!(parse(names, true).passed.is_none());
    assert!(
        !client_head(names, false)
            .iter()
            .any(|l| l.contains("private"))
    );
    // Interim answers never are.
    let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching\r\nupgrade: ws\r\n\r\n"[..]);
    assert!(
        parse_head(&mut buf, true)
            .unwrap()
            .unwrap()
            .passed
            .is_none()
    );
}

#[test]
fn heads_partial_bad_and_too_many() {
    for pass in [false, true] {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: 1\r\n"[..]);
        assert!(parse_head(&mut buf, pass).unwrap().is_none());
        assert_eq!(buf.len(), 23, "a partial head is left in place");
        let mut bad = BytesMut::from(&b"HTTP/1.1 2x0 OK\r\n\r\n"[..]);
        assert!(parse_head(&mut bad, pass).is_err());
        let mut ctl = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n"[..]);
        assert!(
            parse_head(&mut ctl, pass).is_err(),
            "a control byte in a value"
        );
        let mut del = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: a\x7fb\r\n\r\n"[..]);
        assert!(parse_head(&mut del, pass).is_err(), "DEL in a value");
    }
    let mut many = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(parse_head(&mut many, true).is_err());
    let mut two = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: 1\r\nx: 2\r\n\r\nrest"[..]);
    let head = parse_head(&mut two, false).unwrap().unwrap();
    assert_eq!(head.headers.get_all("x").iter().count(), 2);
    assert_eq!(&two[..], b"rest");
}

#[test]
fn chunk_sizes() {
    assert_eq!(body::chunk_size(b"1a"), Some(26));
    assert_eq!(body::chunk_size(b"1A;name=value"), Some(26));
    assert_eq!(body::chunk_size(b"0"), Some(0));
    assert_eq!(body::chunk_size(b""), None);
    assert_eq!(body::chunk_size(b"zz"), None);
    assert_eq!(body::chunk_size(b"10000000000000000"), None);
    assert_eq!(body::chunk_size(b"+a"), None);
    assert_eq!(body::chunk_size(b" a"), None);
    assert_eq!(body::chunk_size(b"a ;x"), Some(10));
}

/// A server on loopback that, on each accepted connection, reads one request head per entry
/// of that connection's script and writes the entry (in pieces, as given), then closes.
async fn scripted(
    connections: Vec<Vec<Vec<&'static [u8]>>>,
) -> (String, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut accepted = 0;
        for script in connections {
            let (mut sock, _) = listener.accept().await.unwrap();
            accepted += 1;
            for answer in script {
                read_request_head(&mut sock).await;
                for piece in answer {
                    sock.write_all(piece).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        accepted
    });
    (addr, task)
}

/// Read from `sock` until a request head has ended (the client sends heads only).
async fn read_request_head(sock: &mut tokio::net::TcpStream) {
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1024];
        let n = sock.read(&mut b).await.unwrap();
        assert!(n > 0, "client closed early");
        seen.extend_from_slice(&b[..n]);
    }
}

fn pool() -> Arc<Pool> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Pool::new(4, Duration::from_secs(60), connector)
}

async fn get(pool: &Arc<Pool>, addr: &str) -> Result<(StatusCode, Vec<u8>), String> {
    request(pool, addr, "GET").await
}

async fn request(
    pool: &Arc<Pool>,
    addr: &str,
    method: &str,
) -> Result<(StatusCode, Vec<u8>), String> {
    let target = Target {
        authority: &addr.parse().unwrap(),
        path_prefix: "",
        extra: &[],
        response_timeout: None,
        pass_fields: false,
    };
    let head = parts(method, "/", &[("host", "t")]);
    let resp = send(pool, &target, &head)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes().to_vec()))
}

#[tokio::test]
async fn chunked_bodies_in_pieces_and_keep_alive() {
    let (addr, server) = scripted(vec![vec![
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n",
            b"\r\n",
        ],
        vec![b"HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\n", b"abc"],
    ]])
    .await;
    let pool = pool();
    assert_eq!(
        get(&pool, &addr).await.unwrap(),
        (StatusCode::OK, b"hello, world".to_vec())
    );
    assert_eq!(
        pool.idle_count(),
        1,
        "a clean end gives the connection back"
    );
    assert_eq!(
        get(&pool, &addr).await.unwrap(),
        (StatusCode::CREATED, b"abc".to_vec())
    );
    assert_eq!(server.await.unwrap(), 1, "both exchanges on one connection");
}

#[tokio::test]
async fn chunked_overrides_a_content_length() {
    let (addr, _server) = scripted(vec![vec![vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ]]])
    .await;
    let target = Target {
        authority: &addr.parse().unwrap(),
        path_prefix: "",
        extra: &[],
        response_timeout: None,
        pass_fields: false,
    };
    let head = parts("GET", "/", &[("host", "t")]);
    let resp = send(&pool(), &target, &head).await.unwrap();
    assert!(!resp.headers().contains_key(header::CONTENT_LENGTH));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced() {
    // The first connection answers once and closes; the second serves the retry.
    let (addr, server) = scripted(vec![
        vec![vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"]],
        vec![vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb"]],
    ])
    .await;
    let pool = pool();
    assert_eq!(get(&pool, &addr).await.unwrap().1, b"a");
    // Let the close arrive, unseen until the connection is used again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&pool, &addr).await.unwrap().1, b"b");
    assert_eq!(server.await.unwrap(), 2);
}

#[tokio::test]
async fn truncated_and_malformed_bodies_fail_and_are_not_kept() {
    let (addr, _server) = scripted(vec![
        vec![vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]],
        vec![vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nxyz\r\n",
        ]],
        vec![vec![b"HTTP/1.1 200 OK\r\n\r\nto the close"]],
    ])
    .await;
    let pool = pool();
    assert!(
        get(&pool, &addr).await.is_err(),
        "a body cut short is an error"
    );
    assert!(
        get(&pool, &addr).await.is_err(),
        "a bad chunk size is an error"
    );
    // A body delimited by the close is whole when the server closes.
    assert_eq!(get(&pool, &addr).await.unwrap().1, b"to the close");
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_connection_that_answers_nothing_is_an_error() {
    let (addr, _server) = scripted(vec![vec![vec![b""]]]).await;
    let err = get(&pool(), &addr).await.unwrap_err();
    assert!(err.contains("closed before an answer"), "{err}");
}

#[tokio::test]
async fn an_answer_of_unknown_length_is_an_error() {
    let (addr, _server) = scripted(vec![
        vec![vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        ]],
        vec![vec![b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nhello"]],
    ])
    .await;
    let pool = pool();
    for _ in 0..2 {
        let err = get(&pool, &addr).await.unwrap_err();
        assert!(err.contains("content-length"), "{err}");
    }
}

#[tokio::test]
async fn an_unsafe_request_is_never_resent() {
    // The kept connection takes the POST's head and closes without an answer: the server may
    // have acted on it, so it is not sent again (a second connection is never made).
    let (addr, server) = scripted(vec![vec![
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"],
        vec![b""],
    ]])
    .await;
    let pool = pool();
    assert_eq!(get(&pool, &addr).await.unwrap().1, b"a");
    let err = request(&pool, &addr, "POST").await.unwrap_err();
    assert!(err.contains("closed before an answer"), "{err}");
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn the_response_timeout_is_per_exchange_and_idle_connections_outlive_it() {
    // One connection: two requests answered, the third never (the server holds it open).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        for answered in 0..3 {
            read_request_head(&mut sock).await;
            if answered < 2 {
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na";
                sock.write_all(ok).await.unwrap();
            }
        }
        // Held open until the client gives up on the third answer.
        let _ = sock.read(&mut [0u8; 1]).await;
    });
    let target = Target {
        authority: &addr.parse().unwrap(),
        path_prefix: "",
        extra: &[],
        response_timeout: Some(Duration::from_millis(200)),
        // The answer's fields passed on: the body and the connection's reuse are the same.
        pass_fields: true,
    };
    let head = parts("GET", "/", &[("host", "t")]);
    let pool = pool();
    for _ in 0..2 {
        let resp = send(&pool, &target, &head).await.unwrap();
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"a"
        );
        // Idle for longer than the timeout: the kept timer must not end the next exchange.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let Err(err) = send(&pool, &target, &head).await else {
        panic!("an answer the server never sent");
    };
    assert!(matches!(err, Error::ResponseTimeout), "{err}");
    assert_eq!(pool.idle_count(), 0, "a timed-out connection is not kept");
    server.await.unwrap();
}

#[test]
fn field_names_compare_without_case() {
    use super::head::is_named;
    for (name, lower, same) in [
        (&b"Content-Length"[..], &b"content-length"[..], true),
        (b"CONTENT-LENGTH", b"content-length", true),
        (b"content-lengtH", b"content-length", true),
        (b"content-lengths", b"content-length", false),
        (b"content_length", b"content-length", false),
        (b"Transfer-Encoding", b"transfer-encoding", true),
        (b"Transfer-Encodinf", b"transfer-encoding", false),
        (b"te", b"te", true),
        (b"TE", b"te", true),
        (b"tf", b"te", false),
        (b"Date", b"date", true),
        (b"", b"", true),
    ] {
        assert_eq!(
            is_named(name, lower),
            same,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // Every token byte but a letter's two cases misses every letter and the dash.
    let tchar = b"!#$%&'*+-.^_`|~0123456789";
    for &c in tchar {
        for &l in b"abcdefghijklmnopqrstuvwxyz-" {
            assert_eq!(is_named(&[c], &[l]), c == l, "{} {}", c as char, l as char);
        }
    }
}
