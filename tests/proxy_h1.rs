//! boma's own HTTP/1.1 server side against a real backend, spoken to byte by byte: pipelined
//! requests, a request body in the middle of a keep-alive connection (hyper takes the
//! connection over with the bytes already read), HEAD and 204 answers that carry no body, a
//! streamed answer sent chunked, `Connection: close`, HTTP/1.0, and draining an idle keep-alive
//! connection, one with a request in flight and one whose request with a body was begun; a
//! client that goes away while an answer's body is awaited ends that answer.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{BASIC_STATIC, Backend, Boma, Client, eventually};

fn dynamic_for(b: &Backend) -> String {
    format!(
        "[http.routers.r]\nrule = \"Host(`h.test`)\"\nservice = \"s\"\n[http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        b.url()
    )
}

async fn start(static_toml: &str) -> (Backend, Boma, SocketAddr) {
    let backend = Backend::start("one").await;
    let boma = Boma::start(static_toml, Some(&dynamic_for(&backend)));
    boma.routed(&Client::new(), "h.test", "/").await;
    let addr = boma.addr("web");
    (backend, boma, addr)
}

/// One answer read off a connection.
#[derive(Debug)]
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads answers one at a time, keeping what follows each.
struct Conn {
    io: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            io: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.io.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// At least `n` bytes buffered; false at the end of the stream.
    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut chunk));
            let got = read.await.expect("answer within 10 s").unwrap();
            if got == 0 {
                return false;
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        true
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// One CRLF-ended line.
    async fn line(&mut self) -> String {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(at + 2);
                return String::from_utf8_lossy(&line[..at]).into_owned();
            }
            let want = self.buf.len() + 1;
            assert!(self.fill(want).await, "closed mid-line: {:?}", self.buf);
        }
    }

    /// The next answer; `bodyless`: the request was HEAD (no body whatever the head says).
    async fn answer(&mut self, bodyless: bool) -> Answer {
        let status_line = self.line().await;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("a header line");
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut a = Answer {
            status_line,
            headers,
            body: Vec::new(),
        };
        let status: u16 = a.status_line[9..12].parse().unwrap();
        if bodyless || status == 204 || status == 304 {
            return a;
        }
        if a.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line().await, 16).unwrap();
                if size == 0 {
                    assert_eq!(self.line().await, "", "no trailers expected");
                    return a;
                }
                assert!(self.fill(size + 2).await);
                let chunk = self.take(size + 2);
                a.body.extend_from_slice(&chunk[..size]);
            }
        }
        let len: usize = a
            .header("content-length")
            .expect("a length")
            .parse()
            .unwrap();
        assert!(self.fill(len).await, "body cut short");
        a.body = self.take(len);
        a
    }

    /// The server closed the connection (after what was read).
    async fn closed(&mut self) -> bool {
        let want = self.buf.len() + 1;
        !self.fill(want).await
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h.test\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_and_a_body_midway_are_answered_in_order() {
    let (backend, _boma, addr) = start(BASIC_STATIC).await;
    let mut c = Conn::open(addr).await;
    // Three in one write: the second has a body, so hyper takes the connection over there
    // with the second and third requests already read by boma.
    let post = "POST /sink HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello";
    c.send(&format!("{}{post}{}", get("/first"), get("/third")))
        .await;
    let first = c.answer(false).await;
    assert!(first.text().contains("GET /first HTTP/1.1"), "{first:?}");
    let second = c.answer(false).await;
    assert_eq!(second.text(), "one received 5", "{second:?}");
    let third = c.answer(false).await;
    assert!(third.text().contains("GET /third HTTP/1.1"), "{third:?}");
    // And one at a time on a fresh connection: bodyless, body, bodyless.
    let mut c = Conn::open(addr).await;
    c.send(&get("/a")).await;
    assert!(c.answer(false).await.text().contains("GET /a "));
    c.send(post).await;
    assert_eq!(c.answer(false).await.text(), "one received 5");
    c.send(&get("/b")).await;
    assert!(c.answer(false).await.text().contains("GET /b "));
    assert!(backend.hits.load(std::sync::atomic::Ordering::SeqCst) >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_answers_carry_no_body_and_streams_are_chunked() {
    let (_backend, _boma, addr) = start(BASIC_STATIC).await;
    let mut c = Conn::open(addr).await;
    // HEAD: the length of the body it would have, and no body (the next answer parses).
    c.send("HEAD /bytes?n=100 HTTP/1.1\r\nHost: h.test\r\n\r\n")
        .await;
    let head = c.answer(true).await;
    assert!(head.status_line.starts_with("HTTP/1.1 200"), "{head:?}");
    assert_eq!(head.header("content-length"), Some("100"), "{head:?}");
    assert!(head.header("date").is_some(), "{head:?}");
    // 204: neither a length nor a body.
    c.send(&get("/status?code=204")).await;
    let none = c.answer(false).await;
    assert!(none.status_line.starts_with("HTTP/1.1 204"), "{none:?}");
    assert_eq!(none.header("content-length"), None, "{none:?}");
    // A body sent without a length upstream comes chunked, whole.
    c.send(&get("/bytes/stream?n=5000")).await;
    let streamed = c.answer(false).await;
    assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
    assert_eq!(streamed.body.len(), 5000);
    assert!(streamed.text().starts_with("boma compresses this line."));
    // A known length is passed on as a length.
    c.send(&get("/bytes?n=3")).await;
    let sized = c.answer(false).await;
    assert_eq!(sized.header("content-length"), Some("3"));
    assert_eq!(sized.body, b"bom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_and_http_1_0_end_the_connection() {
    let (_backend, _boma, addr) = start(BASIC_STATIC).await;
    let mut c = Conn::open(addr).await;
    c.send("GET /x HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
        .await;
    let a = c.answer(false).await;
    assert!(a.status_line.starts_with("HTTP/1.1 200"), "{a:?}");
    assert_eq!(a.header("connection"), Some("close"), "{a:?}");
    assert!(c.closed().await, "the connection stayed open after close");
    // HTTP/1.0 (hyper's): answered as 1.0, then closed.
    let mut c = Conn::open(addr).await;
    c.send("GET /y HTTP/1.0\r\nHost: h.test\r\n\r\n").await;
    let a = c.answer(false).await;
    assert!(a.status_line.starts_with("HTTP/1.0 200"), "{a:?}");
    assert!(c.closed().await, "an HTTP/1.0 connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_idle_connections_and_answers_busy_ones_with_close() {
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.web.transport.lifeCycle]
graceTimeOut = "10s"

[providers.file]
filename = "{dir}/dynamic.toml"
"#;
    let (_backend, boma, addr) = start(static_toml).await;
    // One connection idle between requests, one with a request the backend answers late.
    let mut idle = Conn::open(addr).await;
    idle.send(&get("/before")).await;
    idle.answer(false).await;
    let mut busy = Conn::open(addr).await;
    busy.send(&get("/late?sleep_ms=1500")).await;
    // And one whose request with a body has begun: its head ends after the drain began, and
    // hyper, which takes such requests, must still answer it.
    let mut begun = Conn::open(addr).await;
    begun.send("POST /sink HTTP/1.1\r\nHost: h.test\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &boma.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The idle one is closed at once (well within the grace period)...
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.closed()).await;
    assert_eq!(
        closed.ok(),
        Some(true),
        "an idle connection was kept while draining"
    );
    begun.send("Content-Length: 5\r\n\r\nhello").await;
    let a = begun.answer(false).await;
    assert_eq!(a.text(), "one received 5", "{a:?}");
    assert_eq!(a.header("connection"), Some("close"), "{a:?}");
    // ...the busy one gets its answer, saying the connection ends, and then it does.
    let a = busy.answer(false).await;
    assert!(a.text().contains("GET /late?sleep_ms=1500"), "{a:?}");
    assert_eq!(a.header("connection"), Some("close"), "{a:?}");
    assert!(busy.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_the_body_is_awaited_ends_the_answer() {
    let static_toml = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[providers.file]
filename = "{dir}/dynamic.toml"
"#;
    let (_backend, boma, addr) = start(static_toml).await;
    let api = boma.addr("traefik");
    let client = Client::new();
    let open = || async {
        let web = client.api_entrypoint(api, "web").await?;
        web["connections"]["open"].as_u64()
    };
    // The answer's head and first chunk come at once, the next one 30 s later.
    let mut c = Conn::open(addr).await;
    c.send(&get("/drip")).await;
    let status = c.line().await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(c.fill(1).await);
    // This connection alone (the readiness check's connections close on their own).
    let alone = eventually(Duration::from_secs(10), || async {
        (open().await == Some(1)).then_some(())
    })
    .await;
    assert!(alone.is_some(), "open connections: {:?}", open().await);
    drop(c);
    // Closed long before the body would have gone on: the connection is gone from the count.
    let gone = eventually(Duration::from_secs(10), || async {
        (open().await == Some(0)).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the answer went on for a client that had left"
    );
}
