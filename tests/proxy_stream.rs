//! Faithful proxying through the real binary: 100 MiB streamed each way with bounded memory,
//! a WebSocket echo, h2c from the client, and self-protection: slow clients, oversized headers,
//! malformed requests.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{BASIC_STATIC, Backend, Boma, Client};

const MIB: u64 = 1024 * 1024;

/// `s.test` to backend `b`, and `buf.test` to it through a buffering middleware.
fn dynamic_for(b: &Backend) -> String {
    format!(
        "[http.routers.r]\nrule = \"Host(`s.test`)\"\nservice = \"s\"\n\
         [http.routers.buffered]\nrule = \"Host(`buf.test`)\"\nservice = \"s\"\nmiddlewares = [\"buf\"]\n\
         [http.middlewares.buf.buffering]\n\
         [http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        b.url()
    )
}

async fn ready(boma: &Boma) {
    boma.routed(&Client::new(), "s.test", "/").await;
}

/// POST `chunks` to `target` (the backend's `/sink`, which counts them) on `s.test` through
/// boma at `addr` as a chunked upload; `answered` runs when the answer's head is in. Its status
/// and text.
async fn upload<S>(
    addr: SocketAddr,
    target: &str,
    chunks: S,
    answered: impl FnOnce(),
) -> (u16, String)
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
{
    let req = http::Request::post(target).header("host", "s.test");
    send_upload(addr, req.body(StreamBody::new(chunks)).unwrap(), answered).await
}

/// Send `req` through boma at `addr`; `answered` runs when the answer's head is in. Its status
/// and text.
async fn send_upload<B>(
    addr: SocketAddr,
    req: http::Request<B>,
    answered: impl FnOnce(),
) -> (u16, String)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    answered();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_with_bounded_memory() {
    let backend = Backend::start("big").await;
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let addr = boma.addr("web");
    let rss_before = boma.rss_kib();

    // Download: the backend generates 100 MiB lazily; the client counts without keeping it.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /stream?n={} HTTP/1.1\r\nHost: s.test\r\nConnection: close\r\n\r\n",
            100 * MIB
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut peak = 0u64;
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        if total % (8 * MIB) < n as u64 {
            peak = peak.max(boma.rss_kib());
        }
    }
    assert!(total > 100 * MIB, "short download: {total}");

    // Upload: 100 MiB generated lazily by the client, counted by the backend.
    let chunks = futures_util::stream::iter(
        (0..1600).map(|_| Ok(Frame::data(Bytes::from(vec![b'u'; 64 * 1024])))),
    );
    let (status, text) = upload(addr, "/sink", chunks, || peak = peak.max(boma.rss_kib())).await;
    assert_eq!(status, 200);
    assert_eq!(text, format!("big received {}", 100 * MIB));

    // Memory stayed bounded: nothing close to the 100 MiB that went through.
    let growth = peak.saturating_sub(rss_before);
    assert!(
        growth < 32 * 1024,
        "RSS grew by {growth} KiB while streaming (before {rss_before} KiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo() {
    let backend = Backend::start("ws").await;
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let url = format!("ws://{}/ws", boma.addr("web"));
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    let mut req = req;
    req.headers_mut().insert("host", "s.test".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket handshake through boma");
    assert_eq!(resp.status(), 101);
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: std::net::SocketAddr) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("host", "s.test".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket handshake through boma");
    assert_eq!(resp.status(), 101);
    ws
}

async fn ws_echo(ws: &mut Ws, text: &str) {
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("connection open")
        .expect("a frame");
    assert_eq!(echo.into_text().unwrap().as_str(), text);
}

/// Whether boma closed `ws` (end of stream or a reset) within a generous bound.
async fn ws_closed(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(m))) if m.is_close() => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Upgraded connections stay connections: they hold their permit of `max_connections`, live as
/// long as they carry traffic (past the idle timeout), are closed when idle, and are closed when
/// the entrypoint drains (before a slow request in flight finishes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_hold_permits_live_while_used_and_close_on_drain() {
    let backend = Backend::start("ws").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.web.transport.lifeCycle]
graceTimeOut = "30s"

[providers.file]
filename = "{dir}/dynamic.toml"

[limits]
workers = 1
max_connections = 2
upgraded_idle_timeout = "3s"
"#;
    let boma = Boma::start(static_toml, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let addr = boma.addr("web");
    let first = ws_connect(addr).await;
    let mut second = ws_connect(addr).await;

    // Both permits are held by the two WebSockets: a third connection waits to be accepted
    // until one of them closes.
    let client = Client::new();
    let c = client.clone();
    let waiting = tokio::spawn(async move { c.get(addr, "s.test", "/").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two WebSockets held both permits"
    );
    drop(first);
    assert_eq!(waiting.await.unwrap().status, 200);

    // In use for longer than the idle timeout: kept.
    for i in 0..12 {
        ws_echo(&mut second, &format!("tick {i}")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Silent: closed.
    assert!(ws_closed(&mut second).await, "an idle WebSocket was kept");

    // Drain: an open WebSocket is closed at once, while a slow request still finishes.
    let mut third = ws_connect(addr).await;
    ws_echo(&mut third, "before drain").await;
    let c = client.clone();
    let slow = tokio::spawn(async move { c.get(addr, "s.test", "/?sleep_ms=4000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = boma.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(ws_closed(&mut third).await, "drain left a WebSocket open");
    assert!(
        !slow.is_finished(),
        "the WebSocket outlived the drain: closed only after the slow request"
    );
    assert_eq!(slow.await.unwrap().status, 200, "in-flight request was cut");
    let status = tokio::task::spawn_blocking(move || boma.terminate())
        .await
        .unwrap();
    assert!(status.success(), "boma exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client() {
    let backend = Backend::start("h2").await;
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let stream = TcpStream::connect(boma.addr("web")).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::get("http://s.test/h2")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("h2\nGET "), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("\nhost: s.test\n"),
            "{text}"
        );
    }
}

async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protects_itself() {
    let backend = Backend::start("p").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.web.transport.respondingTimeouts]
readTimeout = "1s"

[providers.file]
filename = "{dir}/dynamic.toml"

[limits]
max_header_bytes = 8192
"#;
    let boma = Boma::start(static_toml, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let addr = boma.addr("web");

    // Malformed request line: 400.
    let r = raw(addr, b"GARBAGE\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // Oversized headers: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: s.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = raw(addr, big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{}", &r[..r.len().min(200)]);

    // A slow-loris client that never finishes its headers is cut off by the read timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: s.test\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "slow client was never disconnected");

    // A slow reader still gets the whole answer.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /stream?n={} HTTP/1.1\r\nHost: s.test\r\nConnection: close\r\n\r\n",
            2 * MIB
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut total = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if total < 256 * 1024 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(total as u64 > 2 * MIB);

    // Still healthy after all that.
    let client = Client::new();
    assert_eq!(client.get(addr, "s.test", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_timeouts_and_drain_on_sigterm() {
    let backend = Backend::start("slow").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.web.transport.lifeCycle]
graceTimeOut = "5s"
[entryPoints.web.transport.respondingTimeouts]
readTimeout = "4s"

[providers.file]
filename = "{dir}/dynamic.toml"

[limits]
upstream_response_timeout = "1s"
"#;
    let boma = Boma::start(static_toml, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    let addr = boma.addr("web");
    let client = Client::new();
    // The backend answers after 3 s; boma gives up after 1 s with 504.
    let r = client.get(addr, "s.test", "/?sleep_ms=3000").await;
    assert_eq!(r.status, 504, "{r:?}");
    // It runs from the request's last byte: an upload that takes longer than it (six chunks,
    // 400 ms apart, within readTimeout) is answered.
    let slowly = futures_util::stream::unfold(0u32, |i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        (i < 6).then(|| (Ok(Frame::data(Bytes::from(vec![b'u'; 1024]))), i + 1))
    });
    let (status, text) = upload(addr, "/sink", slowly, || ()).await;
    assert_eq!((status, &text[..]), (200, "slow received 6144"));
    // And an upload the server then sits on for 3 s is given up on as a plain request is.
    let at_once = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"u")))]);
    let (status, _) = upload(addr, "/sink?sleep_ms=3000", at_once, || ()).await;
    assert_eq!(status, 504);
    // So is one with a Content-Length, and one a buffering middleware read whole first: bodies
    // that are sent whole without being read to their end.
    for host in ["s.test", "buf.test"] {
        let req = http::Request::post("/sink?sleep_ms=3000")
            .header("host", host)
            .header("content-length", "3")
            .body(http_body_util::Full::new(Bytes::from_static(b"abc")))
            .unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(30), send_upload(addr, req, || ()));
        let (status, text) = answered.await.expect("never answered");
        assert_eq!(status, 504, "{host}: {text}");
    }
    // An upload the client stalls is given up on once readTimeout (4 s) has passed since its
    // head: the client is answered and the server's connection let go.
    let stalled = futures_util::stream::unfold(0u32, |i| async move {
        if i == 1 {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        (i < 2).then(|| (Ok(Frame::data(Bytes::from_static(b"u"))), i + 1))
    });
    let given_up = tokio::time::timeout(
        Duration::from_secs(30),
        upload(addr, "/sink", stalled, || ()),
    );
    let (status, text) = given_up
        .await
        .expect("a stalled upload was never given up on");
    assert_eq!(status, 502, "{text}");

    // A request in flight when SIGTERM arrives still completes.
    let c2 = client.clone();
    let inflight = tokio::spawn(async move { c2.get(addr, "s.test", "/?sleep_ms=500").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::spawn_blocking(move || boma.terminate())
        .await
        .unwrap();
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request was cut: {r:?}");
    assert!(status.success(), "boma exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_cuts_a_response_that_takes_too_long() {
    let backend = Backend::start("wt").await;
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.web.transport.respondingTimeouts]
writeTimeout = "1s"

[providers.file]
filename = "{dir}/dynamic.toml"
"#;
    let boma = Boma::start(static_toml, Some(&dynamic_for(&backend)));
    ready(&boma).await;
    // A client that stops reading: 64 MiB cannot fit in the socket buffers, so the response
    // is still being written when the deadline passes and boma cuts the connection.
    let mut s = TcpStream::connect(boma.addr("web")).await.unwrap();
    s.write_all(
        format!(
            "GET /stream?n={} HTTP/1.1\r\nHost: s.test\r\n\r\n",
            64 * MIB
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection was never closed");
    assert!(
        total < 64 * MIB,
        "the whole response arrived despite writeTimeout ({total} bytes)"
    );
}
