//! `whoami`: the HTTP server inside boma's test containers. Std only, so it builds as one static
//! binary that runs in a `FROM scratch` image.
//!
//! It answers every request with its name (env `WHOAMI_NAME`, else the host name), the port that
//! got the request, the request line and the headers, one per line. It listens on every port of
//! env `PORTS` (comma-separated, default 80). Its `X-Whoami-Addr` response header is the address
//! the connection arrived on, which tells on which network a proxy reached it. It can be told to
//! fail or be slow: `/status?code=503` answers that status, `?sleep_ms=200` waits first, env
//! `WHOAMI_FAIL=1` makes every request fail with 500. `whoami check` is a Docker HEALTHCHECK
//! command: it exits 0 unless env `WHOAMI_UNHEALTHY=1`, after a request to the first port.
//!
//! One thread per connection, keep-alive, request heads up to 16 KiB, bodies read and dropped.
//! A test server, not a production one; it must not panic on any request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

const MAX_HEAD: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ports: Vec<u16> = std::env::var("PORTS")
        .unwrap_or_else(|_| "80".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    if args.get(1).map(String::as_str) == Some("check") {
        std::process::exit(check(ports.first().copied().unwrap_or(80)));
    }
    let name = std::env::var("WHOAMI_NAME").ok().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "whoami".into())
    });
    let fail = std::env::var("WHOAMI_FAIL").is_ok_and(|v| v == "1");
    let mut threads = Vec::new();
    for port in ports {
        let listener = match TcpListener::bind(("::", port))
            .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!("whoami: cannot listen on {port}: {e}");
                std::process::exit(1);
            }
        };
        let name = name.clone();
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || serve(stream, &name, port, fail));
            }
        }));
    }
    eprintln!("whoami {name}: listening");
    for t in threads {
        let _ = t.join();
    }
}

fn check(port: u16) -> i32 {
    if std::env::var("WHOAMI_UNHEALTHY").is_ok_and(|v| v == "1") {
        return 1;
    }
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 1;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: check\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return 1;
    }
    let mut buf = [0u8; 12];
    match s.read_exact(&mut buf) {
        Ok(()) if &buf[9..12] == b"200" => 0,
        _ => 1,
    }
}

fn query(target: &str, key: &str) -> Option<u64> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

/// A request head's lines, without the blank line that ends it; `None` when the connection
/// ends first or the head is too large (then answered 431).
fn read_head(reader: &mut BufReader<TcpStream>, out: &mut TcpStream) -> Option<Vec<String>> {
    let mut head = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" || line == "\n" {
            return Some(head);
        }
        head.push(line.trim_end().to_string());
        if head.iter().map(String::len).sum::<usize>() > MAX_HEAD {
            let _ = out.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return None;
        }
    }
}

/// The status and body of the answer: `/status?code=N` answers N, `/health` "ok", anything
/// else the server's name, port, request line and headers (500 for all when failing).
fn answer(head: &[String], target: &str, name: &str, port: u16, fail: bool) -> (u64, String) {
    let path = target.split('?').next().unwrap_or("/");
    let status: u64 = if fail {
        500
    } else if path == "/status" {
        query(target, "code")
            .filter(|c| (200..600).contains(c))
            .unwrap_or(200)
    } else {
        200
    };
    if path == "/health" {
        return (status, "ok\n".into());
    }
    let mut body = format!("{name}\nport: {port}\n{}\n", head[0]);
    for h in head.iter().skip(1) {
        body.push_str(h);
        body.push('\n');
    }
    (status, body)
}

fn serve(stream: TcpStream, name: &str, port: u16, fail: bool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let local = match stream.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(IpAddr::V6(v6), IpAddr::V4)
            .to_string(),
        Ok(ip) => ip.to_string(),
        Err(_) => "?".into(),
    };
    // Head and body go out in two writes: without this, Nagle holds the body back until the
    // peer's delayed ACK (40 ms a keep-alive request).
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut out = write_half;
    loop {
        let Some(head) = read_head(&mut reader, &mut out) else {
            return;
        };
        let Some(request_line) = head.first().cloned() else {
            return;
        };
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let header = |want: &str| {
            head.iter().skip(1).find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(want)
                    .then(|| v.trim().to_string())
            })
        };
        let length: u64 = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).is_err() {
            return;
        }
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if let Some(ms) = query(target, "sleep_ms") {
            std::thread::sleep(Duration::from_millis(ms.min(60_000)));
        }
        let (status, body) = answer(&head, target, name, port, fail);
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Whoami: {name}\r\nX-Whoami-Addr: {local}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let body_bytes = if method == "HEAD" {
            &b""[..]
        } else {
            body.as_bytes()
        };
        if out
            .write_all(response.as_bytes())
            .and_then(|()| out.write_all(body_bytes))
            .is_err()
            || close
        {
            return;
        }
    }
}
