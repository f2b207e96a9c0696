//! boma's own HTTP/1.1 server side: request heads as a client sends them, read in pieces and
//! parsed as the connection loop parses them (the end of a head looked for in the new bytes
//! only, heads taken one after another off one buffer), must never panic; a head handed to
//! hyper must leave every unread byte in place, in order; and the answer head boma writes for
//! any status, header set and body length must never panic either.
#![no_main]

use boma::proxy::h1::server::{self, BodyLen, Parsed};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the read size and the answer's shape; the rest: what the client sent.
    let Some((&shape, sent)) = data.split_first() else {
        return;
    };
    let step = 1 + usize::from(shape & 0x0f) * 37;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut checked = 0;
    loop {
        if fed < sent.len() {
            let n = step.min(sent.len() - fed);
            buf.extend_from_slice(&sent[fed..fed + n]);
            fed += n;
        }
        let Some(end) = server::head_end(&buf, checked) else {
            checked = buf.len();
            if fed == sent.len() {
                return;
            }
            continue;
        };
        assert!(end <= buf.len(), "a head end past the buffer");
        let before = buf.clone().freeze();
        match server::parse_request(&mut buf) {
            Parsed::Partial => {
                assert_eq!(&buf[..], &before[..], "a partial head consumed bytes");
                checked = buf.len();
                if fed == sent.len() {
                    return;
                }
            }
            Parsed::Handover => {
                assert_eq!(&buf[..], &before[..], "a hand-over lost or moved bytes");
                return;
            }
            Parsed::Request { parts, close, .. } => {
                assert!(buf.len() < before.len(), "a request consumed nothing");
                assert!(
                    before.ends_with(&buf),
                    "the rest is not what followed the head"
                );
                checked = 0;
                answer(shape, &parts, close);
            }
        }
    }
});

/// An answer head built from the request's own fields, encoded as the server would.
fn answer(shape: u8, req: &http::request::Parts, close: bool) {
    let status = [200u16, 204, 304, 101, 103, 404, 599][usize::from(shape % 7)];
    let mut resp = http::Response::builder().status(status);
    for (name, value) in &req.headers {
        resp = resp.header(name, value);
    }
    let Ok(resp) = resp.body(()) else {
        return;
    };
    let body = match shape >> 4 {
        0 => BodyLen::Empty,
        1 => BodyLen::Unknown,
        n => BodyLen::Known(u64::from(n) << 8),
    };
    let head = req.method == http::Method::HEAD;
    let mut out = Vec::new();
    let (parts, ()) = resp.into_parts();
    let answer = server::Answer {
        parts,
        passed: None,
    };
    if server::encode_response(&mut out, answer, head, body, close).is_ok() {
        assert!(out.ends_with(b"\r\n\r\n"), "a head without its end");
    } else {
        assert!(out.is_empty(), "a refused head left bytes to send");
    }
}
