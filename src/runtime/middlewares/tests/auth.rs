//! basicAuth: hash formats (Traefik's test vectors), headers, users files, hostile credentials.

use super::*;

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{pass}").as_bytes()))
}

/// Runs one request with `authorization`; `Ok(parts)` when let through, `Err(response)` else.
fn attempt(
    m: &Middleware,
    authorization: Option<&str>,
) -> Result<(http::request::Parts, Ctx), Answer> {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    let mut r = req("GET", "/", &headers);
    let mut c = ctx();
    match run(m, &mut r, &mut c) {
        None => Ok((r, c)),
        Some(resp) => Err(Box::new(resp)),
    }
}

const TEST: &str = "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/";
const TEST2: &str = "test2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0";
const TEST3: &str = "test3:$apr1$3rJbDP0q$RfzJiorTk78jQ1EcKqWso0";
const TEST2_OVERRIDDEN: &str = "test2:$apr1$mK.GtItK$ncnLYvNLek0weXdxo68690";

#[test]
fn md5_crypt_vectors() {
    let cases = [
        (
            "test",
            "H6uskkkW",
            "$apr1$",
            "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
        ),
        (
            "pass word",
            "abcdefgh",
            "$1$",
            "$1$abcdefgh$yTpYrEJJOuAsO2Aee15/D1",
        ),
    ];
    for (pw, salt, magic, want) in cases {
        let got =
            super::super::htpasswd::md5_crypt(pw.as_bytes(), salt.as_bytes(), magic.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
}

#[test]
fn hash_formats() {
    let generated = bcrypt::hash("s3cret", 4).expect("bcrypt hash");
    let cases: Vec<(String, &str, &str, bool)> = vec![
        (TEST.into(), "test", "test", true),
        (TEST.into(), "test", "wrong", false),
        (TEST.into(), "other", "test", false),
        (TEST2.into(), "test2", "test2", true),
        (TEST3.into(), "test3", "test3", true),
        (
            "u:$1$abcdefgh$yTpYrEJJOuAsO2Aee15/D1".into(),
            "u",
            "pass word",
            true,
        ),
        (
            "test:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=".into(),
            "test",
            "test",
            true,
        ),
        (
            "test:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=".into(),
            "test",
            "tesT",
            false,
        ),
        ("test:{SHA}not-base64".into(), "test", "test", false),
        (
            "u:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".into(),
            "u",
            "U*U",
            true,
        ),
        (
            "u:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".into(),
            "u",
            "U*V",
            false,
        ),
        (format!("g:{generated}"), "g", "s3cret", true),
        (format!("g:{generated}"), "g", "s3cret", true), // second time: remembered
        (format!("g:{generated}"), "g", "S3cret", false),
        // Plain text is accepted by Traefik but never matches.
        ("test:test".into(), "test", "test", false),
        ("empty:$apr1$$".into(), "empty", "", false),
    ];
    for (user, name, pass, ok) in &cases {
        let m = mw(&format!("[basicAuth]\nusers = [\"{user}\"]"));
        assert_eq!(
            attempt(&m, Some(&basic(name, pass))).is_ok(),
            *ok,
            "{user} {name}:{pass}"
        );
    }
}

#[test]
fn challenge_and_success_effects() {
    let m = mw(&format!("[basicAuth]\nusers = [\"{TEST}\"]"));
    for authorization in [
        None,
        Some("Bearer abc"),
        Some(basic("test", "nope").as_str()),
    ] {
        let resp = attempt(&m, authorization).expect_err("401");
        assert_eq!(resp.status(), 401);
        assert_eq!(
            header(resp.headers(), "www-authenticate"),
            Some("Basic realm=\"traefik\"")
        );
        assert_eq!(header(resp.headers(), "content-type"), Some("text/plain"));
        assert_eq!(resp.body().as_ref(), b"401 Unauthorized\n");
    }
    let (r, c) = attempt(&m, Some(&basic("test", "test"))).expect("authorized");
    assert!(r.headers.contains_key("authorization"));
    assert_eq!(c.user.as_deref(), Some("test"));
    let lower = format!("basic {}", b64(b"test:test"));
    assert!(
        attempt(&m, Some(&lower)).is_ok(),
        "scheme is case-insensitive"
    );

    let m = mw(&format!(
        "[basicAuth]\nusers = [\"{TEST}\"]\nrealm = \"village\"\nremoveHeader = true\nheaderField = \"X-WebAuth-User\""
    ));
    let resp = attempt(&m, None).expect_err("401");
    assert_eq!(
        header(resp.headers(), "www-authenticate"),
        Some("Basic realm=\"village\"")
    );
    let (r, _) = attempt(&m, Some(&basic("test", "test"))).expect("authorized");
    assert!(!r.headers.contains_key("authorization"));
    assert_eq!(header(&r.headers, "x-webauth-user"), Some("test"));
}

/// What `on_request` does first, without running a slow check.
fn first_step(m: &Middleware, ip: &str, user: &str, pass: &str) -> Flow {
    let auth = basic(user, pass);
    let mut r = req("GET", "/", &[("authorization", auth.as_str())]);
    let mut c = ctx_from(ip, "http");
    m.on_request(&mut r, &mut c)
}

#[test]
fn bcrypt_is_handed_out_and_outcomes_are_remembered() {
    let hash = bcrypt::hash("right", 4).expect("bcrypt hash");
    let m = mw(&format!("[basicAuth]\nusers = [\"admin:{hash}\"]"));
    // bcrypt never runs inside on_request: a Verify comes back, for known and unknown users
    // alike (the unknown one against a dummy of the same cost).
    for user in ["admin", "nobody"] {
        assert!(matches!(
            first_step(&m, "10.0.0.2", user, "x"),
            Flow::Verify(_)
        ));
    }
    assert!(attempt(&m, Some(&basic("nobody", "right"))).is_err());
    assert!(attempt(&m, Some(&basic("admin", "wrong"))).is_err());
    assert!(attempt(&m, Some(&basic("admin", "right"))).is_ok());
    // Both outcomes are remembered: the same pair again needs no check.
    assert!(matches!(
        first_step(&m, "10.0.0.2", "admin", "right"),
        Flow::Continue
    ));
    assert!(matches!(
        first_step(&m, "10.0.0.2", "admin", "wrong"),
        Flow::Respond(_)
    ));
}

#[test]
fn failures_are_limited_per_source() {
    let m = mw(&format!("[basicAuth]\nusers = [\"{TEST}\"]"));
    for i in 0..FAIL_LIMIT_FOR_TEST {
        let resp = attempt(&m, Some(&basic("test", &format!("guess{i}")))).expect_err("401");
        assert_eq!(resp.status(), 401);
    }
    // The source is now refused without a check, even with the right password...
    let resp = attempt(&m, Some(&basic("test", "test"))).expect_err("429");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // ... while another source is not.
    let Flow::Continue = first_step(&m, "10.9.9.9", "test", "test") else {
        panic!("another source was refused");
    };
}

const FAIL_LIMIT_FOR_TEST: u32 = super::super::auth::FAIL_LIMIT;

#[test]
fn hostile_credentials() {
    let m = mw(&format!("[basicAuth]\nusers = [\"{TEST}\", \"{TEST2}\"]"));
    let mut cases: Vec<Vec<u8>> = [
        "Basic",
        "Basic ",
        "Basic =",
        "Basic ====",
        "Basic dGVzdA",
        "Basic dGVzdA=",
        "Basic dGVzdA==",
        "Basic dGVzdDp0ZXN0=",
        "Basic !!!!",
        "Basic  dGVzdDp0ZXN0",
        "Basi dGVzdDp0ZXN0",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    cases.push(b"Basic \xff\xfe".to_vec());
    cases.push(format!("Basic {}", "A".repeat(64 * 1024)).into_bytes());
    cases.push(format!("Basic {}", b64(b"te\xffst:test")).into_bytes());
    cases.push(format!("Basic {}", b64(b":")).into_bytes());
    for value in cases {
        let mut r = req("GET", "/", &[]);
        r.headers.insert(
            "authorization",
            http::HeaderValue::from_bytes(&value).expect("valid header"),
        );
        let answer = run(&m, &mut r, &mut ctx()).expect("refused");
        assert_eq!(
            answer.status(),
            401,
            "{:?}",
            String::from_utf8_lossy(&value)
        );
    }
    // The first Authorization header is the one used.
    let mut r = req(
        "GET",
        "/",
        &[
            ("authorization", &basic("test", "test")),
            ("authorization", "Basic x"),
        ],
    );
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    // A password may contain ':'.
    let m = mw("[basicAuth]\nusers = [\"c:{SHA}3OptnM09ILoVSfbZtd3mB0IViII=\"]");
    assert!(attempt(&m, Some(&basic("c", "a:b"))).is_ok());
}

#[test]
fn users_file_and_overrides() {
    let dir = std::env::temp_dir().join(format!("mw-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("users");
    std::fs::write(&file, format!("# comment\n\n  {TEST}  \n{TEST2}\r\n")).expect("write users");
    let path = file.display().to_string().replace('\\', "/");
    let m = mw(&format!(
        "[basicAuth]\nusersFile = \"{path}\"\nusers = [\"{TEST2_OVERRIDDEN}\", \"{TEST3}\"]"
    ));
    for (user, pass, ok) in [
        ("test", "test", true),
        ("test2", "overridden", true),
        ("test2", "test2", false),
        ("test3", "test3", true),
        ("foo", "foo", false),
    ] {
        assert_eq!(
            attempt(&m, Some(&basic(user, pass))).is_ok(),
            ok,
            "{user}:{pass}"
        );
    }
    let missing = dir.join("missing").display().to_string().replace('\\', "/");
    assert!(compile_err(&format!("[basicAuth]\nusersFile = \"{missing}\"")).contains("usersFile"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn refused_configurations() {
    for (src, want) in [
        ("[basicAuth]\nusers = [\"test\"]", "name:hash"),
        ("[basicAuth]\nusers = [\"a:b:c\"]", "name:hash"),
        ("[basicAuth]\nusers = [\"u:$2y$05$short\"]", "bcrypt"),
        ("[basicAuth]\nusers = []\nrealm = \"a\\nb\"", "realm"),
        (
            "[basicAuth]\nusers = []\nheaderField = \"a b\"",
            "headerField",
        ),
    ] {
        let e = compile_err(src);
        assert!(e.contains(want), "{src}: {e}");
    }
}

#[test]
fn config_debug_hides_hashes() {
    let c = config(&format!("[basicAuth]\nusers = [\"{TEST}\"]"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("apr1"), "{shown}");
    assert!(shown.contains("<1 users>"), "{shown}");
}
