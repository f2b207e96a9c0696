//! The `basicAuth` middleware: HTTP Basic authentication against htpasswd-style users.
//!
//! Hashes are those Traefik (go-http-auth) accepts: bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`),
//! `{SHA}` (base64 SHA-1) and MD5-crypt (`$apr1$`, `$1$`, any `$magic$salt$hash`); anything else
//! is accepted at compile time but never matches, as in Traefik. Comparisons are constant-time.
//! bcrypt is slow by design and runs on the request path, so successful bcrypt checks are
//! remembered in a small bounded set keyed by a keyed SHA-1 of user and password; failures are
//! never cached. This module must not log or expose passwords or hashes (its config `Debug`
//! shows only the user count).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use md5::{Digest, Md5};
use serde::Deserialize;
use sha1::Sha1;

use super::util;
use super::{Ctx, Flow, MiddlewareError};

const KIND: &str = "basicAuth";
/// Successful bcrypt checks remembered (the set is cleared when full).
const CACHE_CAP: usize = 1024;
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

enum Secret {
    Sha([u8; 20]),
    Bcrypt(String),
    /// `$magic$salt$hash` (Go splits on `$` and rebuilds `$magic$`).
    Md5Crypt {
        full: String,
        magic: String,
        salt: String,
    },
    /// A format no password can match.
    Never,
}

pub(crate) struct BasicAuth {
    users: HashMap<Box<[u8]>, Secret>,
    challenge: HeaderValue,
    header_field: Option<HeaderName>,
    remove_header: bool,
    cache_key: [u8; 16],
    cache: Mutex<HashSet<[u8; 20]>>,
}

fn parse_secret(user: &str, secret: &str) -> Result<Secret, MiddlewareError> {
    if let Some(b64) = secret.strip_prefix("{SHA}") {
        return Ok(
            match base64_decode(b64.as_bytes()).map(<[u8; 20]>::try_from) {
                Some(Ok(d)) => Secret::Sha(d),
                _ => Secret::Never,
            },
        );
    }
    if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| secret.starts_with(p))
    {
        secret.parse::<bcrypt::HashParts>().map_err(|e| {
            MiddlewareError::invalid(KIND, format!("user {user:?}: invalid bcrypt hash: {e}"))
        })?;
        return Ok(Secret::Bcrypt(secret.to_owned()));
    }
    let parts: Vec<&str> = secret.splitn(4, '$').collect();
    if parts.len() != 4 {
        return Ok(Secret::Never);
    }
    Ok(Secret::Md5Crypt {
        full: secret.to_owned(),
        magic: format!("${}$", parts[1]),
        salt: parts[2].to_owned(),
    })
}

fn read_users_file(path: &str) -> Result<Vec<String>, MiddlewareError> {
    let err = |source| MiddlewareError::UsersFile {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(USERS_FILE_MAX + 1).read_to_string(&mut text))
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
            users.insert(name.as_bytes().into(), parse_secret(name, hash)?);
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
            users,
            challenge,
            header_field,
            remove_header: c.remove_header,
            cache_key,
            cache: Mutex::new(HashSet::new()),
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
        if !self.check(&user, &password) {
            return Flow::Respond(self.unauthorized());
        }
        let name = String::from_utf8_lossy(&user).into_owned();
        if let Some(field) = &self.header_field
            && let Ok(v) = HeaderValue::from_bytes(&user)
        {
            req.headers.insert(field.clone(), v);
        }
        if self.remove_header {
            req.headers.remove(AUTHORIZATION);
        }
        ctx.user = Some(name);
        Flow::Continue
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

    fn check(&self, user: &[u8], password: &[u8]) -> bool {
        match self.users.get(user) {
            None | Some(Secret::Never) => false,
            Some(Secret::Sha(want)) => ct_eq(&Sha1::digest(password), want),
            Some(Secret::Md5Crypt { full, magic, salt }) => ct_eq(
                &md5_crypt(password, salt.as_bytes(), magic.as_bytes()),
                full.as_bytes(),
            ),
            Some(Secret::Bcrypt(hash)) => {
                let key = self.cache_entry(user, password);
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.contains(&key) {
                    return true;
                }
                drop(cache);
                let ok = bcrypt::verify(password, hash).unwrap_or(false);
                if ok {
                    cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    if cache.len() >= CACHE_CAP {
                        cache.clear();
                    }
                    cache.insert(key);
                }
                ok
            }
        }
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

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Standard base64 with padding, as Go's `StdEncoding` decodes it (CR/LF ignored).
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = input
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let chunks = clean.len() / 4;
    for (i, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// MD5-crypt (`$1$`, Apache `$apr1$`): returns `magic || salt || '$' || 22 chars`.
pub(crate) fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> Vec<u8> {
    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];

    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for i in 0..password.len() {
        ctx.update([alt[i % 16]]);
    }
    let mut i = password.len();
    while i != 0 {
        if i & 1 == 0 {
            ctx.update(&password[..1]);
        } else {
            ctx.update([0u8]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut r = Md5::new();
        if round & 1 == 0 {
            r.update(fin);
        } else {
            r.update(password);
        }
        if round % 3 != 0 {
            r.update(salt);
        }
        if round % 7 != 0 {
            r.update(password);
        }
        if round & 1 == 0 {
            r.update(password);
        } else {
            r.update(fin);
        }
        fin = r.finalize().into();
    }
    let mut out = Vec::with_capacity(magic.len() + salt.len() + 23);
    out.extend_from_slice(magic);
    out.extend_from_slice(salt);
    out.push(b'$');
    let (mut acc, mut bits) = (0u32, 0u32);
    for idx in ORDER {
        acc |= u32::from(fin[idx]) << bits;
        bits += 8;
        while bits > 6 {
            out.push(ITOA64[(acc & 0x3f) as usize]);
            acc >>= 6;
            bits -= 6;
        }
    }
    out.push(ITOA64[(acc & 0x3f) as usize]);
    out
}
