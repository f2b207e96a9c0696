//! Go (RE2) regexps on Rust's `regex` crate, and Traefik v2's `{name:pattern}` host templates.
//!
//! The two syntaxes are close; [`translate`] rewrites the differences so a pattern means what it
//! means in Traefik:
//! - `{` that does not start a valid `{n}`, `{n,}` or `{n,m}` is a literal in Go (Rust refuses it);
//!   counts above 1000 are errors, as in Go.
//! - `\d \s \w \b` are ASCII-only in Go (Unicode in Rust); `\s` has no `\v` in Go.
//! - `\Q...\E` literals and octal escapes (`\0`, `\012`, `\141`) exist only in Go.
//! - In a class, Go reads `[`, `&&`, `~~` and `--` literally (Rust: nested classes, set operators).
//! - Flag groups accept only Go's flags `i m s U` (Rust also has `x R u`).
//!
//! Not bridged: Unicode classes (`\pL`, `\p{Greek}`) need regex features boma does not build, so
//! they are refused; `\C` is refused; Rust accepts a few things Go refuses (`a**`, `\<`).
//! Regexps are size-limited so that a hostile label cannot eat the gateway's memory.

use regex::{Regex, RegexBuilder};

/// Compiled-program and lazy-DFA budgets per regexp.
const SIZE_LIMIT: usize = 1 << 20;
const DFA_LIMIT: usize = 1 << 19;

/// Translate a Go regexp and compile it.
pub(crate) fn compile_go(src: &str) -> Result<Regex, String> {
    build(&translate(src)?)
}

/// Compile an already-Rust regexp with boma's limits.
pub(crate) fn build(rust: &str) -> Result<Regex, String> {
    RegexBuilder::new(rust)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                format!("regular expression is too large (over {SIZE_LIMIT} bytes compiled)")
            }
            other => {
                let text = other.to_string();
                let last = text.lines().last().unwrap_or("invalid regular expression");
                let last = last.trim().trim_start_matches("error: ");
                if last.contains("Unicode property not found") {
                    "Unicode classes such as `\\pL` or `\\p{Greek}` are not supported".to_owned()
                } else {
                    last.to_owned()
                }
            }
        })
}

/// Rewrite Go regexp syntax into the Rust syntax that matches the same strings.
pub(crate) fn translate(src: &str) -> Result<String, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i = match c {
            '\\' => escape(&chars, i, &mut out, false)?,
            '[' => class(&chars, i, &mut out)?,
            '{' => match repeat(&chars, i)? {
                Some(end) => {
                    out.extend(&chars[i..=end]);
                    end + 1
                }
                None => {
                    out.push_str("\\{");
                    i + 1
                }
            },
            '}' => {
                out.push_str("\\}");
                i + 1
            }
            '(' => {
                flags(&chars, i)?;
                out.push('(');
                i + 1
            }
            _ => {
                out.push(c);
                i + 1
            }
        };
    }
    Ok(out)
}

/// If `{` at `at` starts a Go repetition, the index of its `}`; `Ok(None)` when Go reads a literal.
fn repeat(chars: &[char], at: usize) -> Result<Option<usize>, String> {
    let number = |from: usize| -> (usize, Option<u32>) {
        let digits: String = chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let n = digits.len();
        // Go refuses leading zeros, and so reads the brace as a literal.
        if n == 0 || (n > 1 && digits.starts_with('0')) {
            return (n, None);
        }
        (n, Some(digits.parse().unwrap_or(u32::MAX)))
    };
    let (n, min) = number(at + 1);
    let Some(min) = min else { return Ok(None) };
    let mut j = at + 1 + n;
    let mut max = Some(min);
    if chars.get(j) == Some(&',') {
        j += 1;
        let (m, value) = number(j);
        if m > 0 && value.is_none() {
            return Ok(None);
        }
        max = value;
        j += m;
    }
    if chars.get(j) != Some(&'}') {
        return Ok(None);
    }
    if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
        let text: String = chars[at..=j].iter().collect();
        return Err(format!(
            "invalid repeat count `{text}` (Go allows at most 1000)"
        ));
    }
    Ok(Some(j))
}

/// Check a `(?...` group uses only Go's flags.
fn flags(chars: &[char], at: usize) -> Result<(), String> {
    if chars.get(at + 1) != Some(&'?') {
        return Ok(());
    }
    if let Some('P' | '<') = chars.get(at + 2) {
        return Ok(());
    }
    for &c in &chars[at + 2..] {
        match c {
            ':' | ')' => return Ok(()),
            'i' | 'm' | 's' | 'U' | '-' => {}
            _ => break,
        }
    }
    let shown: String = chars[at..].iter().take(4).collect();
    Err(format!("invalid or unsupported Perl syntax `{shown}`"))
}

fn escape(chars: &[char], at: usize, out: &mut String, in_class: bool) -> Result<usize, String> {
    let Some(&c) = chars.get(at + 1) else {
        return Err("trailing backslash at end of expression".to_owned());
    };
    match c {
        'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
            let set = match c.to_ascii_lowercase() {
                'd' => "0-9",
                's' => r"\x09\x0A\x0C\x0D\x20",
                _ => "0-9A-Za-z_",
            };
            match (in_class, c.is_ascii_uppercase()) {
                (true, false) => out.push_str(set),
                (_, true) => {
                    out.push_str("[^");
                    out.push_str(set);
                    out.push(']');
                }
                (false, false) => {
                    out.push('[');
                    out.push_str(set);
                    out.push(']');
                }
            }
            Ok(at + 2)
        }
        'b' | 'B' if !in_class => {
            out.push_str(if c == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
            Ok(at + 2)
        }
        'Q' if !in_class => {
            let rest = &chars[at + 2..];
            let len = rest
                .windows(2)
                .position(|w| w == ['\\', 'E'])
                .unwrap_or(rest.len());
            let literal: String = rest[..len].iter().collect();
            out.push_str(&regex::escape(&literal));
            Ok((at + 2 + len + 2).min(chars.len()))
        }
        '0'..='7' => {
            let octal = |i: usize| chars.get(i).and_then(|d| d.to_digit(8));
            if c != '0' && octal(at + 2).is_none() {
                return Err(format!(
                    "invalid escape sequence `\\{c}` (backreferences are not supported)"
                ));
            }
            let mut value = c.to_digit(8).unwrap_or(0);
            let mut end = at + 2;
            while end < at + 4 {
                let Some(d) = octal(end) else { break };
                value = value * 8 + d;
                end += 1;
            }
            out.push_str(&format!("\\x{{{value:X}}}"));
            Ok(end)
        }
        'x' | 'p' | 'P' => {
            out.push('\\');
            out.push(c);
            let mut i = at + 2;
            if chars.get(i) == Some(&'{') {
                while let Some(&d) = chars.get(i) {
                    out.push(d);
                    i += 1;
                    if d == '}' {
                        break;
                    }
                }
            } else {
                let n = if c == 'x' { 2 } else { 1 };
                for _ in 0..n {
                    if let Some(&d) = chars.get(i) {
                        out.push(d);
                        i += 1;
                    }
                }
            }
            Ok(i)
        }
        _ => {
            out.push('\\');
            out.push(c);
            Ok(at + 2)
        }
    }
}

/// Copy a bracket class starting at `at`, reading it as Go does.
fn class(chars: &[char], at: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    let mut i = at + 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    let mut prev_dash = false;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("missing closing `]` in character class".to_owned());
        };
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                let end = chars[i + 2..].windows(2).position(|w| w == [':', ']']);
                match end {
                    Some(len) => {
                        out.extend(&chars[i..i + 2 + len + 2]);
                        i += 2 + len + 2;
                    }
                    None => {
                        out.push_str("\\[");
                        i += 1;
                    }
                }
            }
            '\\' => i = escape(chars, i, out, true)?,
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if prev_dash => {
                out.push_str("\\-");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
        prev_dash = c == '-';
    }
}

/// Whether `s` holds a Traefik v2 template variable: `{name}` or `{name:`, where the name is made
/// of letters, digits, `_` or `-` and is not all digits (that would be a Go repetition).
pub(crate) fn has_template(s: &str) -> bool {
    s.match_indices('{').any(|(i, _)| {
        let rest = &s[i + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        let name = &rest[..name_len];
        !name.is_empty()
            && !name.bytes().all(|b| b.is_ascii_digit())
            && matches!(rest.as_bytes().get(name_len), Some(b':' | b'}'))
    })
}

/// A Traefik v2 (gorilla/mux) host template as an anchored Rust regexp. Text outside braces is
/// literal (matched lower-case, as boma's hosts are); `{name}` stands for `[^.]+`; `{name:re}` for
/// the Go regexp `re`. Braces nest, as in gorilla/mux.
pub(crate) fn host_template(tpl: &str) -> Result<String, String> {
    let mut out = String::from("^");
    let mut level = 0usize;
    let mut literal_from = 0;
    let mut var_from = 0;
    for (i, b) in tpl.bytes().enumerate() {
        match b {
            b'{' => {
                level += 1;
                if level == 1 {
                    push_literal(&mut out, &tpl[literal_from..i])?;
                    var_from = i + 1;
                }
            }
            b'}' => {
                level = level
                    .checked_sub(1)
                    .ok_or("unbalanced braces in v2 template")?;
                if level == 0 {
                    let var = &tpl[var_from..i];
                    let (name, pattern) = var.split_once(':').unwrap_or((var, "[^.]+"));
                    if name.is_empty() || pattern.is_empty() {
                        return Err(format!(
                            "missing name or pattern in v2 template `{{{var}}}`"
                        ));
                    }
                    out.push_str("(?:");
                    out.push_str(&translate(pattern)?);
                    out.push(')');
                    literal_from = i + 1;
                }
            }
            _ => {}
        }
    }
    if level != 0 {
        return Err("unbalanced braces in v2 template".to_owned());
    }
    push_literal(&mut out, &tpl[literal_from..])?;
    out.push('$');
    Ok(out)
}

/// A v2 host literal (`HostRegexp(`a.com`, `b.com`)`) as an anchored Rust regexp.
pub(crate) fn host_literal(text: &str) -> Result<String, String> {
    let mut out = String::from("^");
    push_literal(&mut out, text)?;
    out.push('$');
    Ok(out)
}

fn push_literal(out: &mut String, text: &str) -> Result<(), String> {
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "`{bad}` outside `{{...}}`: v2 HostRegexp treats that text as a literal host name; \
             put regexp syntax inside `{{name:regexp}}` or use a v3 regexp alone"
        ));
    }
    out.push_str(&regex::escape(&text.to_ascii_lowercase()));
    Ok(())
}
