//! Phase 6, the middlewares' response side: an answer goes back through the middlewares that
//! ran before it, last first. Most adjust its head ([`Middleware::on_response`]); three need
//! the core: `errors` replaces a caught answer with a page fetched from its service,
//! `buffering` reads the answer whole (and may send the buffered request again), and
//! `circuitBreaker` records the status it saw. The same file reads request bodies whole for
//! `buffering` on the way in.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode, request};

use super::forward::{self, ResponseBody, UpBody};
use super::{Proxy, error::ProxyError};
use crate::dynamic::table::Route;
use crate::runtime::balance::Service;
use crate::runtime::middlewares::buffering::{self, Buffering};
use crate::runtime::middlewares::{Ctx, Errors};

impl Proxy {
    /// Take `resp` back through the route's first `depth` middlewares.
    pub(super) async fn walk_back(
        &self,
        route: &Route,
        depth: usize,
        ctx: &mut Ctx,
        mut resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        for i in (0..depth).rev() {
            let mw = &route.middlewares[i];
            mw.on_status(ctx, resp.status());
            if let Some((errors, id)) = mw.errors() {
                if errors.catches(resp.status()) {
                    // Boxed: a rare branch, kept out of every request's future.
                    let status = resp.status();
                    // The caught answer goes first: its upstream connection is not held
                    // while the page is fetched.
                    drop(resp);
                    resp = Box::pin(self.error_page(errors, id, status, ctx)).await;
                }
            } else if let Some(b) = mw.buffering() {
                resp = Box::pin(self.buffer_response(b, route, (i, depth), ctx, resp)).await;
            } else {
                let (mut parts, body) = resp.into_parts();
                mw.on_response(ctx, &mut parts);
                resp = Response::from_parts(parts, body);
            }
        }
        resp
    }

    /// The page of an `errors` middleware for an answer with `status`, sent with the caught
    /// (or rewritten) status; the caught answer's body is dropped.
    async fn error_page(
        &self,
        errors: &Errors,
        id: u64,
        status: StatusCode,
        ctx: &Ctx,
    ) -> Response<ResponseBody> {
        let Some((code, mut head)) = errors.page_request(id, status, ctx) else {
            return text(errors.status_for(status));
        };
        // As the service's own reverse proxy would: no hop-by-hop headers, the client's address.
        forward::strip_hop_by_hop(&mut head.headers, false);
        forward::append_forwarded_for(&mut head.headers, &forward::ip_header(ctx.client_ip));
        let snapshot = self.snapshot.load_full();
        let service = snapshot.services.get(errors.service()).cloned();
        let page = match service {
            None => Err(ProxyError::NoServer),
            Some(svc) => match &*svc {
                // An internal service answers itself, as Traefik's handler would.
                Service::Internal(which) => {
                    let path = head.uri.path();
                    let page =
                        crate::admin::respond(*which, &head.method, path, &snapshot, &self.admin);
                    Ok(page.map(ResponseBody::local))
                }
                _ => {
                    drop(snapshot);
                    (forward::forward(&self.upstream, &svc, &mut head, None, Default::default())
                        .await)
                        .map(|f| f.response)
                }
            },
        };
        let mut resp = match page {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(service = %errors.service(), error = %e, "error page");
                e.response().map(ResponseBody::local)
            }
        };
        forward::strip_response_hop_by_hop(resp.headers_mut());
        *resp.status_mut() = code;
        resp
    }

    /// A `buffering` middleware's response side: read the answer whole, send the request
    /// again while its retry expression says so, and answer with a length. `at`: this
    /// middleware's index and the depth the answer came from (the middlewares in between
    /// see each new answer's head again).
    async fn buffer_response(
        &self,
        b: &Buffering,
        route: &Route,
        (i, from): (usize, usize),
        ctx: &mut Ctx,
        mut resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let mut attempt = 1;
        loop {
            let (mut parts, body) = resp.into_parts();
            let read = match b.response(body).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::debug!(router = %route.name, error = ?e, "buffering the response");
                    return text(buffering::overflow_status(&e, false));
                }
            };
            let again = ctx.resend.as_deref().map(|head| head.method.clone());
            if let Some(method) = &again
                && b.retry(attempt, parts.status, method)
            {
                attempt += 1;
                resp = self.resend(route, ctx).await;
                for mw in route.middlewares[i + 1..from].iter().rev() {
                    mw.on_status(ctx, resp.status());
                    let (mut p, body) = resp.into_parts();
                    mw.on_response(ctx, &mut p);
                    resp = Response::from_parts(p, body);
                }
                continue;
            }
            if !ctx.head && has_body(parts.status) {
                parts.headers.remove(header::TRANSFER_ENCODING);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(read.len()));
            }
            return Response::from_parts(parts, ResponseBody::Boxed(read.body()));
        }
    }

    /// The buffered request sent upstream once more.
    async fn resend(&self, route: &Route, ctx: &mut Ctx) -> Response<ResponseBody> {
        let Some(head) = ctx.resend.as_deref() else {
            return text(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let body = (ctx.buffered.as_ref())
            .filter(|b| !b.is_empty())
            .map(|b| b.body());
        let mut head = head.clone();
        let sent = forward::forward(
            &self.upstream,
            &route.service,
            &mut head,
            body,
            Default::default(),
        )
        .await;
        let resends = ctx.resent.as_ref().map_or(0, |r| r.1) + 1;
        let server = sent
            .as_ref()
            .map_or(String::new(), |f| f.server.url.to_string());
        ctx.resent = Some((server, resends));
        match sent {
            Ok(mut fwd) => {
                forward::strip_response_hop_by_hop(fwd.response.headers_mut());
                if let Some(cookie) = fwd.set_cookie {
                    fwd.response
                        .headers_mut()
                        .append(header::SET_COOKIE, cookie);
                }
                fwd.response
            }
            Err(e) => e.response().map(ResponseBody::local),
        }
    }
}

/// A `buffering` middleware's request side: read the body whole (it is then sent with a
/// length, and kept for retries). `Err`: the answer for a body too large or broken.
pub(super) async fn buffer_request(
    b: &Buffering,
    parts: &mut request::Parts,
    ctx: &mut Ctx,
    body: &mut Option<UpBody>,
) -> Result<(), Response<ResponseBody>> {
    let Some(stream) = body.take() else {
        return Ok(());
    };
    match b.request(stream).await {
        Ok(read) => {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(read.len()));
            if !read.is_empty() {
                *body = Some(read.body());
            }
            ctx.buffered = Some(read);
            Ok(())
        }
        Err(e) => {
            tracing::debug!(error = ?e, "buffering the request");
            Err(text(buffering::overflow_status(&e, true)))
        }
    }
}

/// Whether an answer with `status` carries a body (answers to HEAD are left as they are too:
/// their body is empty but their length is the resource's).
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Go's `http.StatusText` as a plain answer.
fn text(status: StatusCode) -> Response<ResponseBody> {
    let reason = crate::runtime::middlewares::status_text(status);
    let mut resp = Response::new(ResponseBody::local(Bytes::from_static(reason.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
