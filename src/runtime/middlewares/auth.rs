//! The `basicAuth` middleware: HTTP Basic authentication against htpasswd-style users.
//!
//! Hashes are those Traefik (go-http-auth) accepts: bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`),
//! `{SHA}` (base64 SHA-1) and MD5-crypt (`$apr1$`, `$1$`, any `$magic$salt$hash`); anything else
//! is accepted at compile time but never matches, as in Traefik (the formats: [`super::htpasswd`]).
//! Comparisons are constant-time.
//!
//! bcrypt is slow by design (tens of milliseconds a check on a Pi), so it never runs on a
//! worker's event loop: [`BasicAuth::on_request`] answers what it can at once and hands a bcrypt
//! check back as a [`Verify`], which the proxy awaits on the blocking pool, at most
//! [`BCRYPT_PARALLEL`] at a time and [`BCRYPT_QUEUE`] waiting (more: 503). Beyond Traefik:
//! - outcomes are remembered, both ways, in small bounded sets keyed by a keyed SHA-1 of user and
//!   password, so a client repeating the same credentials costs no second bcrypt;
//! - an unknown user is checked against a dummy hash of the same kind and cost, so the answer
//!   time does not tell which users exist;
//! - a source with [`FAIL_LIMIT`] failures within [`FAIL_WINDOW`] gets 429 without any check
//!   until the window ends (sources kept: [`FAIL_SOURCES`], least recently seen forgotten).
//!
//! This module must not log or expose passwords or hashes (its config `Debug` shows only the
//! user count).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde::Deserialize;
use sha1::Digest;
use sha1::Sha1;

use super::htpasswd::{Secret, base64_decode, ct_eq, dummy_secret, md5_crypt, parse_secret};
use super::util;
use super::{Ctx, Flow, MiddlewareError};

const KIND: &str = "basicAuth";
/// Outcomes of slow checks remembered, each way (a set is cleared when full).
const CACHE_CAP: usize = 1024;
/// bcrypt checks running at once, process-wide.
pub const BCRYPT_PARALLEL: usize = 2;
/// bcrypt checks waiting for a turn, process-wide; beyond, 503 at once.
pub const BCRYPT_QUEUE: usize = 256;
/// Failed attempts a source may make within [`FAIL_WINDOW`].
pub const FAIL_LIMIT: u32 = 10;
/// The window of [`FAIL_LIMIT`].
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose failures are counted, per middleware.
pub const FAIL_SOURCES: usize = 4096;

static BCRYPT_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BCRYPT_PARALLEL);
static BCRYPT_WAITING: AtomicUsize = AtomicUsize::new(0);
/// Largest `usersFile` read.
const USERS_FILE_MAX: u64 = 1 << 20;

/// `basicAuth`. `users` entries are `name:hash`; `usersFile` holds one per line (blank lines and
/// `#` comments skipped) and is read by `compile`; inline users win over the file's.
#[derive(Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuthConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub users: Vec<String>,
    #[serde(default)]
    pub users_file: String,
    /// Default `traefik`.
    #[serde(default)]
    pub realm: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub remove_header: bool,
    /// Request header that receives the authenticated user name.
    #[serde(default)]
    pub header_field: String,
}

impl fmt::Debug for BasicAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthConfig")
            .field("users", &format_args!("<{} users>", self.users.len()))
            .field("users_file", &self.users_file)
            .field("realm", &self.realm)
            .field("remove_header", &self.remove_header)
            .field("header_field", &self.header_field)
            .finish()
    }
}

pub(crate) struct BasicAuth {
    users: HashMap<Box<[u8]>, Secret>,
    /// What an unknown user is checked against: the slowest kind of secret configured.
    dummy: Secret,
    challenge: HeaderValue,
    header_field: Option<HeaderName>,
    remove_header: bool,
    cache_key: [u8; 16],
    /// Keys of (user, password) pairs that passed / failed a slow check.
    passed: Mutex<HashSet<[u8; 20]>>,
    failed: Mutex<HashSet<[u8; 20]>>,
    /// Failures per source: (count, start of the window).
    failures: Mutex<crate::lru::Lru<IpAddr, (u32, Instant)>>,
}

/// A bcrypt check handed to the proxy by [`BasicAuth::on_request`]: run it with
/// [`Verify::run`] (off the event loop) and give the outcome back to the same middleware.
pub struct Verify {
    hash: String,
    password: Vec<u8>,
    user: Vec<u8>,
    key: [u8; 20],
}

/// The outcome of a [`Verify`].
pub struct Verified {
    /// `None`: not checked, too many checks waiting.
    ok: Option<bool>,
    user: Vec<u8>,
    key: [u8; 20],
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verify")
    }
}

impl Verify {
    /// Run the check on the blocking pool, after a turn among [`BCRYPT_PARALLEL`].
    pub async fn run(self) -> Verified {
        let queued = BCRYPT_WAITING.fetch_add(1, Ordering::Relaxed);
        let slot = if queued < BCRYPT_QUEUE {
            BCRYPT_SLOTS.acquire().await.ok()
        } else {
            None
        };
        BCRYPT_WAITING.fetch_sub(1, Ordering::Relaxed);
        let Some(_slot) = slot else {
            return Verified {
                ok: None,
                user: self.user,
                key: self.key,
            };
        };
        let Verify {
            hash,
            password,
            user,
            key,
        } = self;
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        Verified {
            ok: Some(ok),
            user,
            key,
        }
    }

    /// The same check on the calling thread (the middleware's unit tests).
    #[cfg(test)]
    pub fn run_blocking(self) -> Verified {
        Verified {
            ok: Some(bcrypt::verify(&self.password, &self.hash).unwrap_or(false)),
            user: self.user,
            key: self.key,
        }
    }
}

fn read_users_file(path: &str) -> Result<Vec<String>, MiddlewareError> {
    let err = |source| MiddlewareError::UsersFile {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    let file = crate::runtime::regular::open(std::path::Path::new(path)).map_err(|e| {
        if crate::runtime::regular::not_regular(&e) {
            MiddlewareError::invalid(KIND, format!("usersFile {path:?} is not a regular file"))
        } else {
            err(e)
        }
    })?;
    file.take(USERS_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > USERS_FILE_MAX {
        return Err(MiddlewareError::invalid(
            KIND,
            format!("usersFile {path:?} is larger than 1 MiB"),
        ));
    }
    Ok(text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

impl BasicAuth {
    pub(crate) fn compile(c: &BasicAuthConfig) -> Result<Self, MiddlewareError> {
        let mut lines = if c.users_file.is_empty() {
            Vec::new()
        } else {
            read_users_file(&c.users_file)?
        };
        lines.extend(c.users.iter().cloned());
        let mut users = HashMap::new();
        for line in &lines {
            let mut it = line.split(':');
            let (Some(name), Some(hash), None) = (it.next(), it.next(), it.next()) else {
                let shown = line.split(':').next().unwrap_or_default();
                return Err(MiddlewareError::invalid(
                    KIND,
                    format!("error parsing user entry for {shown:?}: expected name:hash"),
                ));
            };
            users.insert(
                name.as_bytes().into(),
                parse_secret(name, hash).map_err(|why| MiddlewareError::invalid(KIND, why))?,
            );
        }
        let realm = if c.realm.is_empty() {
            "traefik"
        } else {
            &c.realm
        };
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .map_err(|_| MiddlewareError::invalid(KIND, format!("invalid realm {realm:?}")))?;
        let header_field = if c.header_field.is_empty() {
            None
        } else {
            Some(
                HeaderName::from_bytes(c.header_field.as_bytes()).map_err(|_| {
                    MiddlewareError::invalid(
                        KIND,
                        format!("invalid headerField {:?}", c.header_field),
                    )
                })?,
            )
        };
        let mut cache_key = [0u8; 16];
        for chunk in cache_key.chunks_mut(8) {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(chunk.as_ptr() as usize);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        Ok(BasicAuth {
            dummy: dummy_secret(&users),
            users,
            challenge,
            header_field,
            remove_header: c.remove_header,
            cache_key,
            passed: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashSet::new()),
            failures: Mutex::new(crate::lru::Lru::new(FAIL_SOURCES)),
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let creds = req
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| parse_basic(v.as_bytes()));
        let Some((user, password)) = creds else {
            return Flow::Respond(self.unauthorized());
        };
        if self.blocked(ctx.client_ip, ctx.now) {
            return Flow::Respond(too_many_failures());
        }
        let secret = self.users.get(user.as_slice()).unwrap_or(&self.dummy);
        let known = self.users.contains_key(user.as_slice());
        let ok = match secret {
            Secret::Never => false,
            Secret::Sha(want) => ct_eq(&Sha1::digest(&password), want) && known,
            Secret::Md5Crypt { full, magic, salt } => {
                ct_eq(
                    &md5_crypt(&password, salt.as_bytes(), magic.as_bytes()),
                    full.as_bytes(),
                ) && known
            }
            Secret::Bcrypt(hash) => {
                let key = self.cache_entry(&user, &password);
                if lock(&self.passed).contains(&key) {
                    true
                } else if lock(&self.failed).contains(&key) {
                    false
                } else {
                    let hash = hash.clone();
                    let v = Verify {
                        hash,
                        password,
                        user,
                        key,
                    };
                    return Flow::Verify(Box::new(v));
                }
            }
        };
        self.conclude(ok, &user, req, ctx)
    }

    /// Take back the outcome of a [`Verify`] this middleware handed out.
    pub(crate) fn verified(
        &self,
        v: Verified,
        req: &mut http::request::Parts,
        ctx: &mut Ctx,
    ) -> Flow {
        let Some(ok) = v.ok else {
            let mut resp = util::text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many password checks waiting\n",
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Flow::Respond(resp);
        };
        // An unknown user was checked against the dummy: never a pass, never remembered.
        let ok = ok && self.users.contains_key(v.user.as_slice());
        let set = if ok { &self.passed } else { &self.failed };
        let mut set = lock(set);
        if set.len() >= CACHE_CAP {
            set.clear();
        }
        set.insert(v.key);
        drop(set);
        self.conclude(ok, &v.user, req, ctx)
    }

    fn conclude(
        &self,
        ok: bool,
        user: &[u8],
        req: &mut http::request::Parts,
        ctx: &mut Ctx,
    ) -> Flow {
        if !ok {
            self.count_failure(ctx.client_ip, ctx.now);
            return Flow::Respond(self.unauthorized());
        }
        if let Some(field) = &self.header_field
            && let Ok(v) = HeaderValue::from_bytes(user)
        {
            req.headers.insert(field.clone(), v);
        }
        if self.remove_header {
            req.headers.remove(AUTHORIZATION);
        }
        ctx.user = Some(String::from_utf8_lossy(user).into_owned());
        Flow::Continue
    }

    /// Whether `ip` has used up its failures in the current window.
    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let mut table = lock(&self.failures);
        match table.get_mut(&ip) {
            Some((count, since)) if now.saturating_duration_since(*since) < FAIL_WINDOW => {
                *count >= FAIL_LIMIT
            }
            Some(_) => {
                table.remove(&ip);
                false
            }
            None => false,
        }
    }

    fn count_failure(&self, ip: IpAddr, now: Instant) {
        let mut table = lock(&self.failures);
        let entry = table.get_or_insert_with(ip, || (0, now));
        if now.saturating_duration_since(entry.1) >= FAIL_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    fn unauthorized(&self) -> Response<Bytes> {
        let mut resp = util::text_response(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        h.insert(WWW_AUTHENTICATE, self.challenge.clone());
        resp
    }

    fn cache_entry(&self, user: &[u8], password: &[u8]) -> [u8; 20] {
        let mut h = Sha1::new();
        h.update(self.cache_key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user);
        h.update(password);
        h.finalize().into()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn too_many_failures() -> Response<Bytes> {
    let mut resp = util::text_response(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed logins, try again later\n",
    );
    let wait = HeaderValue::from(FAIL_WINDOW.as_secs());
    resp.headers_mut().insert(http::header::RETRY_AFTER, wait);
    resp
}

/// `Authorization: Basic base64(user:password)`, parsed as Go's `Request.BasicAuth` does.
fn parse_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    const PREFIX: &[u8] = b"Basic ";
    if value.len() < PREFIX.len() || !value[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = base64_decode(&value[PREFIX.len()..])?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}
