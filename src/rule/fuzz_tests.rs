//! Robustness tests: size and nesting limits, and a deterministic mutation fuzz over the rows of
//! the main tables that must never panic (in `Rule::parse`, `matches`, `host_keys`,
//! `mentioned_hosts` or `default_priority`). No external crates: a xorshift drives it.

use super::tests::{ERRORS, MATCH, check, spec};
use super::{MAX_RULE_LEN, Rule, default_priority};

#[test]
fn limits() {
    let deep = format!("{}Host(`a`){}", "(".repeat(64), ")".repeat(64));
    assert!(Rule::parse(&deep).is_ok());
    let deeper = format!("{}Host(`a`){}", "(".repeat(65), ")".repeat(65));
    assert!(
        Rule::parse(&deeper)
            .unwrap_err()
            .message
            .contains("deeper than 64")
    );
    for hostile in [
        "(".repeat(200_000),
        "!".repeat(200_000),
        "!(".repeat(30_000),
    ] {
        assert!(Rule::parse(&hostile).is_err());
    }
    // A long flat chain stays shallow: parses and matches without deep recursion.
    let chain = vec!["Host(`a`)"; 5900].join("||");
    assert!(chain.len() <= MAX_RULE_LEN);
    assert!(check(&chain, "GET a /"));
    assert!(!check(&chain, "GET b /"));
    let too_long = format!("Host(`{}`)", "a".repeat(MAX_RULE_LEN));
    assert!(
        Rule::parse(&too_long)
            .unwrap_err()
            .message
            .contains("limit is 65536")
    );
}

/// Deterministic xorshift; no external crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutation_fuzz_never_panics() {
    const ALPHABET: &[&str] = &[
        "(",
        ")",
        "!",
        "&&",
        "||",
        "&",
        "|",
        "`",
        "\"",
        "\\",
        "'",
        ",",
        " ",
        "\n",
        "{",
        "}",
        "[",
        "]",
        "*",
        "?",
        "+",
        "^",
        "$",
        ".",
        "-",
        ":",
        "/",
        "%",
        "=",
        "a",
        "Z",
        "0",
        "9",
        "é",
        "🦭",
        "\\x",
        "\\u",
        "\\1",
        "(?",
        "{1,",
        "[[:",
        "\\Q",
        "Host(`",
        "Path(`/",
        "HostRegexp(`{a:",
        "Query(`",
        "ClientIP(`",
        "`)",
        "::",
        "/33",
    ];
    let seeds: Vec<&str> = MATCH
        .iter()
        .map(|r| r.0)
        .chain(ERRORS.iter().map(|r| r.0))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let s = spec("GET a.com /p%20q?x=1&y=%zz X-A=1 ip=::ffff:10.0.0.1");
    let req = s.req();
    let mut parsed = 0;
    for round in 0..4000 {
        let mut text = if round % 10 == 0 {
            String::new()
        } else {
            seeds[rng.below(seeds.len())].to_owned()
        };
        for _ in 0..=rng.below(4) {
            let piece = ALPHABET[rng.below(ALPHABET.len())];
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, piece),
                1 if at < text.len() => {
                    let mut end = at + 1 + rng.below(3);
                    while end < text.len() && !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end.min(text.len()), "");
                }
                _ => text.insert_str(at, piece),
            }
        }
        if round % 3 == 1 {
            // Aim at the Go regexp translator and the v2 templates.
            let m = ["PathRegexp", "HostRegexp", "HeaderRegexp(`X-A`, "][rng.below(3)];
            let open = if m.ends_with(' ') { "" } else { "(" };
            text = format!("{m}{open}`{}`)", text.replace('`', ""));
        }
        let _ = default_priority(&text);
        if let Ok(rule) = Rule::parse(&text) {
            parsed += 1;
            let _ = rule.matches(&req);
            let _ = rule.host_keys();
            let _ = rule.mentioned_hosts();
        }
    }
    assert!(
        parsed > 100,
        "the fuzz should also produce valid rules, got {parsed}"
    );
}
