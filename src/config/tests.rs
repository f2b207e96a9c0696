//! Tests of the static configuration: Traefik-style files, key case, defaults, positioned
//! errors (unknown keys, types, validation), the embedded default and the documented example.

use std::net::SocketAddr;
use std::path::Path;

use super::*;

fn parse_ok(src: &str) -> Config {
    match parse(src, Path::new("boma.toml")) {
        Ok(config) => config,
        Err(e) => panic!("unexpected errors:\n{e}\n--- in:\n{src}"),
    }
}

/// Every problem as `line:col: message`.
fn problems(src: &str) -> Vec<String> {
    match parse(src, Path::new("boma.toml")) {
        Ok(config) => panic!("expected errors, parsed {config:?}"),
        Err(e) => e
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

/// Asserts that `src` fails with exactly one problem at `at` ("line:col") containing `text`.
fn assert_one(src: &str, at: &str, text: &str) {
    let found = problems(src);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with(&format!("{at}: ")), "{found:#?}");
    assert!(found[0].contains(text), "{found:#?}");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// From Traefik's documentation, keys as Traefik writes them.
const TRAEFIK_STYLE: &str = r#"
[entryPoints]
  [entryPoints.web]
    address = ":80"
    [entryPoints.web.http.redirections.entryPoint]
      to = "websecure"
      scheme = "https"
  [entryPoints.websecure]
    address = ":443"
    asDefault = true
    [entryPoints.websecure.transport.respondingTimeouts]
      readTimeout = "42s"
      writeTimeout = 42
      idleTimeout = "1m30s"
    [entryPoints.websecure.transport.lifeCycle]
      requestAcceptGraceTimeout = 42
      graceTimeOut = "5s"
    [entryPoints.websecure.forwardedHeaders]
      trustedIPs = ["127.0.0.1/32", "192.168.1.7", "fd00::/8"]
    [entryPoints.websecure.http]
      middlewares = ["auth@file", "strip"]
      [entryPoints.websecure.http.tls]
        certResolver = "leresolver"
        [[entryPoints.websecure.http.tls.domains]]
          main = "example.org"
          sans = ["www.example.org"]

[providers]
  providersThrottleDuration = "10s"
  [providers.file]
    directory = "/etc/boma/dynamic"
    watch = false

[api]
  insecure = true

[log]
  level = "DEBUG"
  filePath = "/var/log/boma.log"
  format = "json"
  noColor = true

[accessLog]
  filePath = "/var/log/access.log"
  format = "json"
  bufferingSize = 100
  [accessLog.filters]
    statusCodes = ["200", "300-302"]
    retryAttempts = true
    minDuration = "10ms"
  [accessLog.fields]
    defaultMode = "keep"
    [accessLog.fields.names]
      ClientUsername = "drop"
    [accessLog.fields.headers]
      defaultMode = "keep"
      [accessLog.fields.headers.names]
        User-Agent = "redact"
        Authorization = "drop"
"#;

#[test]
fn parses_traefik_style_file() {
    let c = parse_ok(TRAEFIK_STYLE);
    let web = &c.entry_points["web"];
    assert_eq!(web.socket_addr(), addr("0.0.0.0:80"));
    let redirect = web.redirection().expect("redirect");
    assert_eq!(redirect.target(), RedirectTarget::EntryPoint("websecure"));
    assert!(redirect.permanent);
    assert_eq!(redirect.priority, i64::MAX - 1);

    let ws = &c.entry_points["websecure"];
    assert!(ws.as_default);
    let rt = &ws.transport.responding_timeouts;
    assert_eq!(rt.read_timeout, Duration::from_secs(42));
    assert_eq!(rt.write_timeout, Duration::from_secs(42));
    assert_eq!(rt.idle_timeout, Duration::from_secs(90));
    assert_eq!(
        ws.transport.life_cycle.request_accept_grace_timeout,
        Duration::from_secs(42)
    );
    assert_eq!(
        ws.transport.life_cycle.grace_time_out,
        Duration::from_secs(5)
    );
    assert_eq!(ws.forwarded_headers.trusted_ips.len(), 3);
    assert_eq!(ws.http.middlewares, ["auth@file", "strip"]);
    let tls = ws.http.tls.as_ref().expect("tls");
    assert_eq!(tls.cert_resolver.as_deref(), Some("leresolver"));
    assert_eq!(tls.domains[0].sans, ["www.example.org"]);
    assert_eq!(c.default_entry_points(), ["websecure"]);

    let providers = c.providers.as_ref().expect("providers");
    assert_eq!(
        providers.providers_throttle_duration,
        Duration::from_secs(10)
    );
    let file = providers.file.as_ref().expect("file provider");
    assert_eq!(
        file.directory.as_deref(),
        Some(Path::new("/etc/boma/dynamic"))
    );
    assert!(!file.watch);

    let api = c.api.as_ref().expect("api");
    assert!(api.dashboard && api.insecure && !api.debug);

    let log = c.log.as_ref().expect("log");
    assert_eq!(
        (log.level, log.format, log.no_color),
        (LogLevel::Debug, LogFormat::Json, true)
    );

    let al = c.access_log.as_ref().expect("access log");
    assert_eq!((al.format, al.buffering_size), (LogFormat::Json, 100));
    assert_eq!(al.filters.status_codes, ["200", "300-302"]);
    assert_eq!(al.filters.min_duration, Duration::from_millis(10));
    assert_eq!(al.fields.names["ClientUsername"], FieldMode::Drop);
    assert_eq!(al.fields.headers.names["User-Agent"], FieldMode::Redact);
    assert_eq!(c.limits, Limits::default());
}

#[test]
fn field_names_ignore_case_and_map_keys_keep_it() {
    let spellings = [
        "[entryPoints.Web]\naddress = \":8080\"",
        "[entrypoints.Web]\nADDRESS = \":8080\"",
        "[EntryPoints.Web]\nAddress = \":8080\"",
        "[ENTRYPOINTS]\nWeb = { aDdReSs = \":8080\" }",
    ];
    for src in spellings {
        let c = parse_ok(src);
        let names: Vec<&String> = c.entry_points.keys().collect();
        assert_eq!(names, ["Web"], "{src}");
        assert_eq!(
            c.entry_points["Web"].socket_addr(),
            addr("0.0.0.0:8080"),
            "{src}"
        );
    }
    // Map keys that differ in case are different entry points.
    let c = parse_ok("[entryPoints.web]\naddress = \":1\"\n[entryPoints.Web]\naddress = \":2\"");
    assert_eq!(c.entry_points.len(), 2);
}

#[test]
fn tables_spelled_differently_are_merged() {
    let src = "[entryPoints.a]\naddress = \":1\"\n[EntryPoints.b]\naddress = \":2\"\n\
               [ENTRYPOINTS.a.transport.respondingTimeouts]\nreadTimeout = 7\n";
    let c = parse_ok(src);
    assert_eq!(c.entry_points.len(), 2);
    let a = &c.entry_points["a"];
    assert_eq!(
        a.transport.responding_timeouts.read_timeout,
        Duration::from_secs(7)
    );
    assert_one(
        "[log]\nlevel = \"info\"\nLEVEL = \"debug\"\n",
        "3:1",
        "duplicate key `LEVEL`",
    );
}

#[test]
fn all_unknown_keys_are_reported_with_positions() {
    let src = r#"[entryPoints.web]
  address = ":80"
  adress = ":81"
  [entryPoints.web.transport.respondingTimeouts]
    readTimeout = "1s"
    bogus = 1
[providers.file]
  filename = "x.toml"
  debugLogGeneratedTemplate = true
[limits]
  max_conections = 10
[tracing]
"#;
    assert_eq!(
        problems(src),
        [
            "3:3: unknown key `adress`; did you mean `address`?",
            "6:5: unknown key `bogus`; expected one of `readTimeout`, `writeTimeout`, `idleTimeout`",
            "9:3: `debugLogGeneratedTemplate` is a Traefik option that boma does not support",
            "11:3: unknown key `max_conections`; did you mean `max_connections`?",
            "12:2: `tracing` is a Traefik option that boma does not support",
        ]
    );
}

#[test]
fn type_errors_point_at_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[entryPoints.web]\naddress = \":80\"\nasDefault = \"maybe\"",
            "3:13",
            "expected a boolean",
        ),
        ("entryPoints = 5", "1:15", "invalid type: integer"),
        (
            "[limits]\nmax_connections = \"many\"",
            "2:19",
            "expected usize",
        ),
        ("[limits]\nmax_connections = -1", "2:19", "expected usize"),
        ("[log]\nlevel = \"loud\"", "2:9", "unknown variant `loud`"),
        (
            "[accessLog]\nformat = \"xml\"",
            "2:10",
            "expected `common` or `json`",
        ),
        (
            "[accessLog]\nfields.names.X = \"hide\"",
            "2:18",
            "unknown variant `hide`",
        ),
        (
            "[providers]\nprovidersThrottleDuration = \"soon\"",
            "2:29",
            "invalid duration `soon`",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\nhttp.middlewares = [\"a\", 2.5, {}]",
            "3:31",
            "invalid type: table",
        ),
        (
            "[entryPoints.web]\nasDefault = true",
            "1:14",
            "missing field `address`",
        ),
        ("[api]\ndashboard = [true]", "2:13", "invalid type: array"),
    ];
    for (src, at, text) in cases {
        assert_one(src, at, text);
    }
}

#[test]
fn problems_after_a_failed_value_are_still_found() {
    let src = r#"[entryPoints.web]
address = ":99999"
asDefault = "maybe"
[entryPoints.ok]
address = ":81"
adress = 1
[log]
level = "loud"
"#;
    let found = problems(src);
    let at: Vec<&str> = found.iter().filter_map(|p| p.split(": ").next()).collect();
    // No "missing field `address`" for `web`: it only follows from the bad address.
    assert_eq!(at, ["2:11", "3:13", "6:1", "8:9"], "{found:#?}");
}

#[test]
fn scalars_are_read_as_traefik_reads_them() {
    let src = "[entryPoints.web]\naddress = \":80\"\nasDefault = \"true\"\nhttp.middlewares = \"a, b\"\n\
               [limits]\nmax_routes = \"12\"\n[api]\ndebug = \"T\"";
    let c = parse_ok(src);
    assert!(c.entry_points["web"].as_default);
    assert_eq!(c.entry_points["web"].http.middlewares, ["a", "b"]);
    assert_eq!(c.limits.max_routes, 12);
    assert!(c.api.as_ref().is_some_and(|a| a.debug));
    // `api = true` is an empty [api] section, as Traefik's allowEmpty sections.
    assert!(parse_ok("api = true").api.is_some_and(|a| a.dashboard));
}

#[test]
fn defaults_when_sections_are_present_but_empty() {
    let c =
        parse_ok("[entryPoints.web]\naddress = \":80\"\n[api]\n[log]\n[accessLog]\n[providers]\n");
    let web = &c.entry_points["web"];
    assert!(!web.as_default && web.http.redirections.is_none() && web.http.tls.is_none());
    assert_eq!(
        web.transport.responding_timeouts.read_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(
        web.transport.responding_timeouts.write_timeout,
        Duration::ZERO
    );
    assert_eq!(
        web.transport.responding_timeouts.idle_timeout,
        Duration::from_secs(180)
    );
    assert_eq!(
        web.transport.life_cycle.grace_time_out,
        Duration::from_secs(10)
    );
    assert!(web.forwarded_headers.trusted_ips.is_empty() && !web.forwarded_headers.insecure);
    assert_eq!(
        c.api,
        Some(Api {
            dashboard: true,
            insecure: false,
            debug: false
        })
    );
    assert_eq!(c.log, Some(Log::default()));
    assert_eq!(Log::default().level, LogLevel::Error);
    let al = c.access_log.as_ref().expect("access log");
    assert_eq!(al.format, LogFormat::Common);
    assert_eq!(al.fields.default_mode, FieldMode::Keep);
    assert_eq!(al.fields.headers.default_mode, FieldMode::Drop);
    let providers = c.providers.as_ref().expect("providers");
    assert_eq!(
        providers.providers_throttle_duration,
        Duration::from_secs(2)
    );
    assert!(providers.file.is_none());

    let c = parse_ok("");
    assert_eq!(c, Config::default());
    assert!(c.entry_points.is_empty() && c.providers.is_none() && c.log.is_none());
    let l = c.limits;
    assert_eq!(
        (l.max_connections, l.max_header_bytes, l.max_routes),
        (4096, 16384, 10_000)
    );
    assert_eq!(l.upstream_idle_per_host, 64);
    assert_eq!(l.upstream_idle_timeout, Duration::from_secs(90));
    assert_eq!(l.upstream_connect_timeout, Duration::from_secs(5));
    assert_eq!(l.upstream_response_timeout, Duration::from_secs(60));
    assert_eq!(l.passive_cooldown, Duration::from_secs(10));
    assert_eq!(l.rate_limit_sources, 10_000);
    assert_eq!(l.upgraded_idle_timeout, Duration::from_secs(3600));
    let c = parse_ok("[limits]\npassive_cooldown = \"3s\"\nrate_limit_sources = 50\n");
    assert_eq!(c.limits.passive_cooldown, Duration::from_secs(3));
    assert_eq!(c.limits.rate_limit_sources, 50);

    let c = parse_ok("[providers.file]\nfilename = \"d.toml\"\n");
    assert!(c.providers.and_then(|p| p.file).is_some_and(|f| f.watch));
    let c = parse_ok("[entryPoints.a]\naddress=\":1\"\n[entryPoints.b]\naddress=\":2\"");
    assert_eq!(c.default_entry_points(), ["a", "b"]);
}

#[test]
fn addresses() {
    let good = [
        (":8080", "0.0.0.0:8080"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("[::1]:8080", "[::1]:8080"),
        ("[::]:443", "[::]:443"),
        (":80/tcp", "0.0.0.0:80"),
        ("0.0.0.0:0/TCP", "0.0.0.0:0"),
    ];
    for (text, expected) in good {
        assert_eq!(
            Address::parse(text).map(|a| a.socket_addr()),
            Ok(addr(expected)),
            "{text}"
        );
    }
    let bad = [
        (":53/udp", AddressError::Udp),
        (":53/sctp", AddressError::Protocol("sctp".into())),
        ("localhost:80", AddressError::HostName("localhost".into())),
        ("", AddressError::Invalid(String::new())),
        (":http", AddressError::Invalid(":http".into())),
        (":65536", AddressError::Invalid(":65536".into())),
        ("8080", AddressError::Invalid("8080".into())),
        ("::1:80", AddressError::Invalid("::1:80".into())),
    ];
    for (text, expected) in bad {
        assert_eq!(Address::parse(text), Err(expected), "{text}");
    }
    assert_one(
        "[entryPoints.dns]\naddress = \":53/udp\"",
        "2:11",
        "UDP entrypoints not supported yet",
    );
}

#[test]
fn validation_problems_are_positioned() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[entryPoints.a]\naddress = \":80\"\n[entryPoints.b]\naddress = \"0.0.0.0:80\"",
            "4:11",
            "clashes with 0.0.0.0:80 of entry point `a`",
        ),
        (
            "[entryPoints.b]\naddress = \":80\"\n[entryPoints.a]\naddress = \"127.0.0.1:80\"",
            "4:11",
            "entry point `a` listens on 127.0.0.1:80",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\nhttp.redirections.entryPoint.to = \"websecure\"",
            "3:35",
            "redirection to unknown entry point `websecure` (known: `web`)",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\nhttp.redirections.entryPoint.to = \"web\"",
            "3:35",
            "redirects to itself",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\n[entryPoints.web.http.redirections.entryPoint]\n\
             to = \":443\"\nscheme = \"ftp\"",
            "5:10",
            "scheme `ftp`",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\nforwardedHeaders.trustedIPs = [\"10.0.0.0/8\", \"10.0.0.0/33\"]",
            "3:46",
            "`10.0.0.0/33` is not an IP address or CIDR range",
        ),
        (
            "[entryPoints.web]\naddress = \":80\"\ntransport.respondingTimeouts.readTimeout = \"-1s\"",
            "3:44",
            "`readTimeout` must not be negative",
        ),
        (
            "[providers.file]\nwatch = true",
            "1:12",
            "needs `filename` or `directory`",
        ),
        (
            "[providers.file]\nfilename = \"a.toml\"\ndirectory = \"d\"",
            "3:1",
            "only one of `filename` and `directory`",
        ),
        (
            "[providers.file]\nfilename = \"\"",
            "2:12",
            "`filename` is empty",
        ),
        (
            "[accessLog.filters]\nstatusCodes = [\"200\", \"500-404\"]",
            "2:23",
            "\"500-599\"",
        ),
        ("[limits]\nmax_connections = 0", "2:19", "at least 1"),
        (
            "[limits]\nmax_header_bytes = 100",
            "2:20",
            "between 8192 and 1048576",
        ),
        (
            "[limits]\nupstream_connect_timeout = 0",
            "2:28",
            "greater than zero",
        ),
    ];
    for (src, at, text) in cases {
        assert_one(src, at, text);
    }
    // Validation problems are all reported together.
    let src = "[entryPoints.a]\naddress = \":80\"\nhttp.redirections.entryPoint.to = \"x\"\n\
               [limits]\nmax_routes = 0\nmax_connections = 0\n";
    assert_eq!(problems(src).len(), 3);
}

#[test]
fn syntax_errors_are_all_reported() {
    let found = problems("[entryPoints.web]\naddress = :80\nasDefault = \n");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("2:11: "), "{found:#?}");
    assert!(found[1].starts_with("3:13: "), "{found:#?}");
}

#[test]
fn errors_display_as_file_line_col() {
    let Err(e) = parse(
        "[log]\nlevel = 1\n[api]\nx = 1",
        Path::new("/etc/boma.toml"),
    ) else {
        panic!("expected errors");
    };
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("/etc/boma.toml:2:9: "), "{text}");
    assert!(
        lines[1].starts_with("/etc/boma.toml:4:1: unknown key `x`"),
        "{text}"
    );

    let Err(e) = load(Path::new("/nonexistent/boma.toml")) else {
        panic!("expected an error");
    };
    assert_eq!(e.len(), 1);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/boma.toml: cannot read the file"),
        "{e}"
    );
}

#[test]
fn columns_count_characters() {
    let loc = Locator::new(Path::new("f"), "a = \"é\"\n\tb = 1\n");
    assert_eq!(loc.position(0), (1, 1));
    assert_eq!(loc.position(7), (1, 7));
    assert_eq!(loc.position(9), (2, 1));
    assert_eq!(loc.position(10), (2, 2));
    assert_eq!(loc.position(999), (3, 1));
}

#[test]
fn span_map_records_canonical_paths() {
    let src = "[ENTRYPOINTS.Web]\nADDRESS = \":80\"\n";
    let (_, spans) = nocase::from_toml_spanned::<Config>(src, Path::new("f"), &[]).expect("parses");
    let at = spans
        .get(&["entryPoints", "Web", "address"])
        .expect("recorded");
    assert_eq!(&src[at.key.clone()], "ADDRESS");
    assert_eq!(&src[at.value.clone()], "\":80\"");
    assert_eq!(
        spans.value_span(&["entryPoints", "Web", "http", "tls"]),
        13..16
    );
}

#[test]
fn embedded_default_parses() {
    let c = parse_ok(DEFAULT_TOML);
    assert_eq!(c.entry_points.len(), 2);
    assert_eq!(c.entry_points["web"].socket_addr(), addr("127.0.0.1:8080"));
    assert_eq!(
        c.entry_points["traefik"].socket_addr(),
        addr("127.0.0.1:8081")
    );
    assert!(c.api.as_ref().is_some_and(|a| a.insecure && a.dashboard));
    assert_eq!(c.log.map(|l| l.level), Some(LogLevel::Info));
    assert!(c.providers.is_none());
}

#[test]
fn documented_example_parses_and_matches_defaults() {
    let c = parse_ok(include_str!("../../docs/boma.example.toml"));
    assert_eq!(c.limits, Limits::default());
    let web = &c.entry_points["web"];
    assert_eq!(web.transport, Transport::default());
    assert!(c.providers.is_some() && c.api.is_some() && c.log.is_some());
    assert!(c.access_log.is_some());
}

#[test]
fn certificate_resolvers_are_local_cas_with_checked_bounds() {
    let c = parse_ok("[certificatesResolvers.v.localCA]\n");
    let ca = c.certificates_resolvers["v"]
        .local_ca
        .as_ref()
        .expect("localCA");
    assert_eq!(*ca, crate::config::LocalCaConfig::default());
    assert_eq!(ca.storage, std::path::PathBuf::from("/data/boma/local-ca"));
    let p = problems(
        "[certificatesResolvers.a.localCA]\ndomains = [\"*.x.lan\", \"ok.lan\"]\n\
         certificateDuration = \"10m\"\nmaxCertificates = 0\n\
         [certificatesResolvers.b]\n",
    );
    for want in [
        "`*.x.lan` is not a domain name",
        "from 1h to 825 days",
        "at least 1",
        "a resolver needs a kind",
    ] {
        assert!(p.iter().any(|e| e.contains(want)), "{want}: {p:?}");
    }
    let p = problems("[certificatesResolvers.le.acme]\nemail = \"a@b.c\"\n");
    assert!(p.iter().any(|e| e.contains("acme")), "{p:?}");
}

#[test]
fn update_section_is_optional_and_its_bounds_are_checked() {
    let c = parse_ok("[update]\ncommit_after = \"10s\"\n");
    let u = c.update.expect("[update]");
    assert_eq!(u.commit_after.to_std().as_secs(), 10);
    assert_eq!((u.trial_boots, u.reboot), (2, true));
    assert_eq!(u.boot, std::path::PathBuf::from("/boot"));
    let p = problems(
        "[update]\nslot = \"c\"\ntrial_boots = 0\ncommit_after = \"10m\"\nmax_bundle = 5\n",
    );
    for want in [
        "slot is `a` or `b`",
        "trial_boots is 1 to 9",
        "commit_after is 0s to 5m",
        "max_bundle is at least 1 MiB",
    ] {
        assert!(p.iter().any(|e| e.contains(want)), "{want}: {p:?}");
    }
}
