//! htpasswd secrets as Traefik (go-http-auth) reads them: bcrypt, `{SHA}` and MD5-crypt hashes
//! parsed from a user line, the dummy secret an unknown user is checked against, and the
//! primitives checking a password needs (MD5-crypt, a constant-time comparison, Go's base64).

use std::collections::HashMap;

use md5::{Digest, Md5};

/// A user's secret, by hash format.
pub(super) enum Secret {
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

/// A secret of the slowest kind among `users` that no password matches: what an unknown user
/// is checked against so that the answer takes as long as for a known one.
pub(super) fn dummy_secret(users: &HashMap<Box<[u8]>, Secret>) -> Secret {
    let bcrypt_cost = users
        .values()
        .filter_map(|s| match s {
            Secret::Bcrypt(h) => h.get(4..6).and_then(|c| c.parse::<u32>().ok()),
            _ => None,
        })
        .max();
    if let Some(cost) = bcrypt_cost {
        // A well-formed hash (22 salt and 31 hash characters) that nothing hashes to.
        return Secret::Bcrypt(format!("$2y${cost:02}${}", "A".repeat(53)));
    }
    if users.values().any(|s| matches!(s, Secret::Md5Crypt { .. })) {
        return Secret::Md5Crypt {
            full: "$apr1$dummy$".into(),
            magic: "$apr1$".into(),
            salt: "dummy".into(),
        };
    }
    Secret::Sha([0; 20])
}

/// A user's secret as written in htpasswd; a bcrypt hash that does not parse is an error.
pub(super) fn parse_secret(user: &str, secret: &str) -> Result<Secret, String> {
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
        (secret.parse::<bcrypt::HashParts>())
            .map_err(|e| format!("user {user:?}: invalid bcrypt hash: {e}"))?;
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

/// Equal, in time that depends only on the lengths.
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Standard base64 with padding, as Go's `StdEncoding` decodes it (CR/LF ignored).
pub(super) fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
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
