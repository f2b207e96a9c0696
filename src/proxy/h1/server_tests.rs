use bytes::BytesMut;
use http::{HeaderValue, Response, StatusCode, header};

use super::*;

fn parse(text: &str) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(text.as_bytes());
    (parse_request(&mut buf), buf)
}

#[test]
fn a_bodyless_request_is_taken_and_consumed() {
    let (p, left) =
        parse("GET /a?b=1 HTTP/1.1\r\nHost: x.lan\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next");
    let Parsed::Request {
        parts,
        close,
        trailers,
    } = p
    else {
        panic!("not taken: {p:?}");
    };
    assert!(!close);
    assert!(!trailers);
    assert_eq!(parts.method, Method::GET);
    assert_eq!(parts.uri, "/a?b=1");
    assert_eq!(parts.version, Version::HTTP_11);
    assert_eq!(parts.headers["host"], "x.lan");
    let xa: Vec<_> = parts.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(&left[..], b"GET /next");
}

#[test]
fn partial_heads_wait_for_more() {
    assert!(matches!(
        parse("GET / HTTP/1.1\r\nHost: x").0,
        Parsed::Partial
    ));
    assert!(matches!(parse("GE").0, Parsed::Partial));
}

#[test]
fn connection_close_and_te_trailers_are_seen_among_other_tokens() {
    let (p, _) =
        parse("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\nTE: gzip, Trailers\r\n\r\n");
    assert!(matches!(
        p,
        Parsed::Request {
            close: true,
            trailers: true,
            ..
        }
    ));
}

#[test]
fn a_head_end_is_found_once_whole_wherever_reads_cut_it() {
    let head = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
    let end = head.len() - 3;
    // Fed a byte at a time, looking only at what is new: found once, where it is (a leading
    // CRLF, which the parser skips, is not an end).
    let mut checked = 0;
    let mut found = Vec::new();
    for n in 1..=head.len() {
        if let Some(at) = head_end(&head[..n], checked) {
            found.push(at);
        }
        checked = n;
    }
    assert_eq!(found, [end]);
    assert_eq!(
        head_end(b"\r\n\r\nGET", 0),
        Some(4),
        "blank lines end nothing yet"
    );
    assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n", 0), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
}

#[test]
fn what_hyper_serves_is_handed_over_untouched() {
    for text in [
        "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "CONNECT x:443 HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET http://[::1/ HTTP/1.1\r\n\r\n",
    ] {
        let (p, left) = parse(text);
        assert!(matches!(p, Parsed::Handover), "{text:?} taken: {p:?}");
        assert_eq!(&left[..], text.as_bytes(), "{text:?} not put back whole");
    }
}

#[test]
fn a_zero_content_length_is_no_body() {
    let (p, _) = parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let Parsed::Request { parts, .. } = p else {
        panic!("not taken");
    };
    assert_eq!(parts.headers[header::CONTENT_LENGTH], "0");
}

#[test]
fn too_many_fields_go_to_hyper() {
    let mut text = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        text.push_str(&format!("x-{i}: v\r\n"));
    }
    text.push_str("\r\n");
    assert!(matches!(parse(&text).0, Parsed::Handover));
}

fn answer(parts: http::response::Parts) -> Answer {
    Answer {
        parts,
        passed: None,
    }
}

fn encode(resp: Response<()>, head: bool, body: BodyLen, close: bool) -> (String, Encoded) {
    let mut dst = Vec::new();
    let (parts, ()) = resp.into_parts();
    let enc = encode_response(&mut dst, answer(parts), head, body, close).expect("encodes");
    let text = String::from_utf8(dst).expect("ascii");
    (text, enc)
}

/// The head without its `date` line (checked separately).
fn without_date(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("date: "))
        .map(|l| format!("{l}\r\n"))
        .collect()
}

#[test]
fn a_known_length_is_written_with_a_date() {
    let resp = Response::builder().header("x-b", "1").body(()).unwrap();
    let (text, enc) = encode(resp, false, BodyLen::Known(13), false);
    assert_eq!(
        without_date(&text),
        "HTTP/1.1 200 OK\r\nx-b: 1\r\ncontent-length: 13\r\n\r\n"
    );
    let date = text.lines().find_map(|l| l.strip_prefix("date: "));
    let date = date.expect("a date line");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date:?}");
    assert_eq!(
        enc,
        Encoded {
            framing: Framing::Length(13),
            close: false
        }
    );
}

#[test]
fn an_unknown_length_is_chunked_and_announced_trailers_kept() {
    let resp = Response::builder()
        .status(404)
        .header("trailer", "grpc-status, x-t")
        .body(())
        .unwrap();
    let (text, enc) = encode(resp, false, BodyLen::Unknown, false);
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    let allowed = vec![
        HeaderName::from_static("grpc-status"),
        HeaderName::from_static("x-t"),
    ];
    assert_eq!(enc.framing, Framing::Chunked(allowed));
}

#[test]
fn head_keeps_its_length_and_sends_no_body() {
    let resp = Response::builder()
        .header("content-length", "42")
        .body(())
        .unwrap();
    let (text, enc) = encode(resp, true, BodyLen::Empty, false);
    assert!(text.contains("content-length: 42\r\n"), "{text}");
    assert_eq!(enc.framing, Framing::Length(0));
    // Without a length header nothing is made up for HEAD.
    let (text, _) = encode(Response::new(()), true, BodyLen::Empty, false);
    assert!(!text.contains("content-length"), "{text}");
}

#[test]
fn no_content_and_not_modified_have_no_length_or_body() {
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let resp = Response::builder().status(status).body(()).unwrap();
        let (text, enc) = encode(resp, false, BodyLen::Unknown, false);
        assert!(!text.contains("content-length"), "{text}");
        assert!(!text.contains("transfer-encoding"), "{text}");
        assert_eq!(enc.framing, Framing::Length(0));
    }
}

#[test]
fn an_empty_body_says_zero() {
    let (text, enc) = encode(Response::new(()), false, BodyLen::Empty, false);
    assert!(text.contains("content-length: 0\r\n"), "{text}");
    assert_eq!(enc.framing, Framing::Length(0));
}

#[test]
fn closing_says_so_once() {
    let (text, enc) = encode(Response::new(()), false, BodyLen::Known(1), true);
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(enc.close);
    let resp = Response::builder()
        .header("connection", "close")
        .body(())
        .unwrap();
    let (text, enc) = encode(resp, false, BodyLen::Known(1), false);
    assert_eq!(text.matches("connection").count(), 1, "{text}");
    assert!(enc.close, "a close the answer asks for ends the connection");
}

#[test]
fn a_length_header_frames_a_body_of_unknown_size() {
    let resp = Response::builder()
        .header("content-length", "5")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let (text, enc) = encode(resp, false, BodyLen::Unknown, false);
    assert_eq!(text.matches("content-length: 5").count(), 1, "{text}");
    assert_eq!(enc.framing, Framing::Length(5));
    let mut dst = Vec::new();
    let differing = Response::builder()
        .header("content-length", "5")
        .header("content-length", "6")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let err = encode_response(&mut dst, answer(differing), false, BodyLen::Unknown, false);
    assert!(err.is_err());
    assert!(dst.is_empty(), "a refused head leaves nothing to send");
}

#[test]
fn a_transfer_coding_gets_chunked_last() {
    let resp = Response::builder()
        .header("transfer-encoding", "gzip")
        .body(())
        .unwrap();
    let (text, enc) = encode(resp, false, BodyLen::Unknown, false);
    assert!(
        text.contains("transfer-encoding: gzip, chunked\r\n"),
        "{text}"
    );
    assert_eq!(enc.framing, Framing::Chunked(Vec::new()));
}

#[test]
fn an_interim_status_becomes_a_closing_empty_500() {
    let mut resp = Response::builder()
        .status(103)
        .header("link", "</a.css>")
        .body(())
        .unwrap();
    let reason = hyper::ext::ReasonPhrase::from_static(b"Early");
    resp.extensions_mut().insert(reason);
    let (text, enc) = encode(resp, false, BodyLen::Known(10), false);
    assert!(
        text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{text}"
    );
    assert!(text.contains("content-length: 0\r\n"), "{text}");
    assert!(!text.contains("link"), "{text}");
    assert_eq!(
        enc.framing,
        Framing::Length(0),
        "the 1xx's body is not sent"
    );
    assert!(enc.close);
}

#[test]
fn a_length_header_is_digits_only() {
    for bad in ["+5", " 5", "5 ", "0x5", ""] {
        let mut dst = Vec::new();
        let parts = Response::builder()
            .header("content-length", bad)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let res = encode_response(&mut dst, answer(parts), false, BodyLen::Unknown, false);
        assert!(res.is_err(), "{bad:?} taken");
    }
}

#[test]
fn a_servers_reason_phrase_is_repeated() {
    let mut resp = Response::builder().status(200).body(()).unwrap();
    let reason = hyper::ext::ReasonPhrase::from_static(b"Fine");
    resp.extensions_mut().insert(reason);
    let (text, _) = encode(resp, false, BodyLen::Empty, false);
    assert!(text.starts_with("HTTP/1.1 200 Fine\r\n"), "{text}");
}

#[test]
fn chunks_are_framed_in_hex_and_trailers_filtered() {
    let mut dst = Vec::new();
    chunk_line(&mut dst, 0x1a2);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-t", HeaderValue::from_static("1"));
    trailers.insert("x-other", HeaderValue::from_static("2"));
    trailers.insert("content-length", HeaderValue::from_static("3"));
    let allowed = [
        HeaderName::from_static("x-t"),
        HeaderName::from_static("content-length"),
    ];
    chunked_end(&mut dst, Some(&trailers), &allowed);
    assert_eq!(dst, b"1a2\r\n0\r\nx-t: 1\r\n\r\n");
}
