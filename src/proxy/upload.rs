//! `POST /api/update` on `api@internal`: the request body, an update bundle, streamed into
//! [`crate::update::Updater::install`] on the blocking pool through a channel of four chunks, so
//! an upload of any size holds a few hundred KiB at most and never blocks this worker. Only a
//! router with the `[admin] users` gate may take it (never the unauthenticated `[api] insecure`
//! entry point), and `?force=1` installs a bundle older than the running version.

use std::io::Read;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Response, StatusCode, header, request};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::mpsc;

use crate::dynamic::table::Route;
use crate::update::Updater;

/// How long an upload may pause before it is given up.
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a whole upload may take (30 MiB at 16 KiB/s, a slow village uplink).
const WHOLE: std::time::Duration = std::time::Duration::from_secs(1800);

/// Whether a request to `api@internal` is an upload.
pub fn is_upload(parts: &request::Parts) -> bool {
    parts.method == http::Method::POST && parts.uri.path() == "/api/update"
}

/// A `Read` over the chunks a worker task sends; the end of the channel is the end of input.
struct Chunks {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while !self.current.has_remaining() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string() + "\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Take the upload and answer with the installed slot and version, or why it was refused.
pub async fn receive(
    updater: &Arc<Updater>,
    route: &Route,
    user: Option<&str>,
    parts: &request::Parts,
    mut body: super::forward::UpBody,
) -> Response<Bytes> {
    let max = updater.config().max_bundle;
    if route.name.ends_with("@internal") || user.is_none() {
        discard(parts, &mut body, max).await;
        return answer(
            StatusCode::FORBIDDEN,
            json!({"error": "updates need [admin] users and a router to api@internal through them"}),
        );
    }
    let length = (parts.headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = length.filter(|&n| n > max) {
        // Up to twice the bound, a too-big bundle is read through so that its sender gets
        // the 413 rather than a reset; beyond that it is cut off.
        discard(parts, &mut body, n.min(max.saturating_mul(2))).await;
        let e = crate::update::UpdateError::TooBig(max);
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": e.to_string()}),
        );
    }
    let force = (parts.uri.query().unwrap_or(""))
        .split('&')
        .any(|kv| matches!(kv, "force=1" | "force=true"));
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let reader = Chunks {
        rx,
        current: Bytes::new(),
    };
    let job = {
        let updater = Arc::clone(updater);
        tokio::task::spawn_blocking(move || updater.install(reader, force))
    };
    feed(&mut body, tx, max).await;
    match job.await {
        Ok(Ok(done)) => {
            let reboot = updater.config().reboot;
            updater.reboot_later(std::time::Duration::from_secs(1));
            answer(
                StatusCode::OK,
                json!({
                    "slot": done.slot.name(),
                    "version": done.version,
                    "bytes": done.bytes,
                    "state": "trial",
                    "reboot": reboot,
                }),
            )
        }
        Ok(Err(e)) => answer(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            json!({"error": e.to_string()}),
        ),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("the installer failed: {e}")}),
        ),
    }
}

/// Pass the body to the installer. Once the installer stops reading (it has its answer), the
/// rest of the body is read and dropped, up to `max`, so that the client gets the answer rather
/// than a reset. A client that stops sending for IDLE gives up its upload: the installer sees
/// the end of the body (a truncated bundle) and the next upload is not kept waiting behind it.
async fn feed(body: &mut super::forward::UpBody, tx: mpsc::Sender<Bytes>, max: u64) {
    let (mut seen, mut feeding) = (0u64, true);
    let deadline = tokio::time::Instant::now() + WHOLE;
    while let Ok(Some(frame)) = tokio::time::timeout(IDLE, body.frame()).await {
        if tokio::time::Instant::now() > deadline {
            break;
        }
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if feeding && tx.send(data).await.is_err() {
            feeding = false;
        }
        if !feeding && seen > max {
            break;
        }
    }
}

/// Read and drop up to `limit` bytes of a body that is refused (a client stalling for `IDLE`,
/// or the whole taking `WHOLE`, ends it): a client still sending then reads the answer instead
/// of a reset from a connection closed with its bytes unread.
///
/// A client that sent `Expect: 100-continue` has not sent the body yet: reading it would ask
/// for it, so the answer goes at once (hyper then sends no 100).
async fn discard(parts: &request::Parts, body: &mut super::forward::UpBody, limit: u64) {
    let expects = (parts.headers.get(header::EXPECT))
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects {
        return;
    }
    let deadline = tokio::time::Instant::now() + WHOLE;
    let mut seen = 0u64;
    while seen < limit && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(IDLE, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => return,
        }
    }
}
