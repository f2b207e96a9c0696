//! The compiled form of a rule and its evaluation. Compiling checks every argument (counts,
//! emptiness, leading `/`, ASCII hosts, regexps, IPs and CIDRs), pushes every `!` down to the
//! matchers (De Morgan, as Traefik's `invert` does) and flattens `&&`/`||` chains, so evaluation
//! is a shallow walk over pre-lowered strings, compiled regexps and parsed networks.
//!
//! Evaluation must not allocate unless the request itself needs decoding (a `%` in the path, a
//! `%` or `+` in a query value looked at by a regexp, non-UTF-8 header bytes under a regexp).

use crate::ipnet::Net;
use std::net::IpAddr;

use http::HeaderName;
use regex::Regex;

use super::goregex;
use super::parser::{Arg, Call, Expr, Kind};
use super::request::{query_decode, query_eq, query_pairs, text};
use super::{Request, RuleError};

#[derive(Debug)]
pub(crate) enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Leaf { negated: bool, test: Test },
}

#[derive(Debug)]
pub(crate) enum Test {
    Host(Vec<HostPat>),
    HostRegexp(Vec<Regex>),
    Path(Vec<Box<str>>),
    PathPrefix(Vec<Box<str>>),
    PathRegexp(Regex),
    Method(Vec<Box<str>>),
    /// Every (name, value) pair holds; a `None` name never matches (invalid name, or `Host`).
    Headers(Vec<(Option<HeaderName>, Box<str>)>),
    HeadersRegexp(Vec<(Option<HeaderName>, Regex)>),
    /// v3: some value of `key` equals `value`.
    Query {
        key: Box<str>,
        value: Box<str>,
    },
    /// v2 (`key=value`, ...): for every pair, the first `key` has that value (`None`: is present).
    QueryV2(Vec<(Box<str>, Option<Box<str>>)>),
    QueryRegexp {
        key: Box<str>,
        re: Regex,
    },
    ClientIp(Vec<Net>),
}

#[derive(Debug)]
pub(crate) enum HostPat {
    /// Lower-case, one trailing dot stripped.
    Exact(Box<str>),
    /// Bare `*`: every request, even without a host.
    Any,
    /// `*.` alone: a host of one label.
    OneLabel,
    /// `*.x`: stored as `.x`; the first label (possibly empty) is free.
    Single(Box<str>),
    /// `**.x`: stored as `.x`; one or more non-empty leading labels.
    Double(Box<str>),
    /// Any other `*...` form, which Traefik never matches.
    Never,
}

pub(crate) fn compile(src: &str, expr: &Expr) -> Result<Node, RuleError> {
    let mut c = Compiler { src };
    c.node(expr, false)
}

struct Compiler<'a> {
    src: &'a str,
}

impl Compiler<'_> {
    fn err(&self, offset: usize, msg: impl Into<String>) -> RuleError {
        RuleError::at(self.src, offset, msg)
    }

    fn node(&mut self, e: &Expr, neg: bool) -> Result<Node, RuleError> {
        match e {
            Expr::Not(inner) => self.node(inner, !neg),
            Expr::And(xs) | Expr::Or(xs) => {
                let all = matches!(e, Expr::And(_)) != neg;
                let mut items = Vec::with_capacity(xs.len());
                for x in xs {
                    match self.node(x, neg)? {
                        Node::All(v) if all => items.extend(v),
                        Node::Any(v) if !all => items.extend(v),
                        n => items.push(n),
                    }
                }
                Ok(if all {
                    Node::All(items)
                } else {
                    Node::Any(items)
                })
            }
            Expr::Call(call) => Ok(Node::Leaf {
                negated: neg,
                test: self.test(call)?,
            }),
        }
    }

    fn arity(&self, call: &Call, ok: bool, expected: &str) -> Result<(), RuleError> {
        if ok {
            return Ok(());
        }
        let name = call.kind.name();
        let got = call.args.len();
        Err(self.err(call.offset, format!("`{name}` takes {expected}, got {got}")))
    }

    fn test(&mut self, call: &Call) -> Result<Test, RuleError> {
        let n = call.args.len();
        if n == 0 {
            return Err(self.err(
                call.offset,
                format!("`{}` needs at least one argument", call.kind.name()),
            ));
        }
        if let Some(empty) = call.args.iter().find(|a| a.value.is_empty()) {
            return Err(self.err(
                empty.offset,
                format!("empty argument to `{}`", call.kind.name()),
            ));
        }
        let args = &call.args;
        Ok(match call.kind {
            Kind::Host | Kind::HostHeader => {
                let mut pats = Vec::with_capacity(n);
                for a in args {
                    pats.push(self.host_pat(a)?);
                }
                Test::Host(pats)
            }
            Kind::HostRegexp => self.host_regexps(call)?,
            Kind::Path | Kind::PathPrefix => {
                let mut paths = Vec::with_capacity(n);
                for a in args {
                    paths.push(self.path(call, a)?);
                }
                if call.kind == Kind::Path {
                    Test::Path(paths)
                } else {
                    Test::PathPrefix(paths)
                }
            }
            Kind::PathRegexp => {
                self.arity(call, n == 1, "1 argument")?;
                Test::PathRegexp(self.regex(call, &args[0])?)
            }
            Kind::Method => {
                Test::Method(args.iter().map(|a| a.value.to_uppercase().into()).collect())
            }
            Kind::Header | Kind::HeaderRegexp => {
                self.arity(call, n == 2, "2 arguments (name, value)")?;
                self.headers(call)?
            }
            Kind::Headers | Kind::HeadersRegexp => {
                self.arity(
                    call,
                    n.is_multiple_of(2),
                    "pairs of arguments (name, value, ...)",
                )?;
                self.headers(call)?
            }
            Kind::Query => self.query(call)?,
            Kind::QueryRegexp => self.query_regexp(call)?,
            Kind::ClientIp => {
                let mut nets = Vec::with_capacity(n);
                for a in args {
                    nets.push(Net::parse(&a.value).map_err(|e| self.err(a.offset, e.to_string()))?);
                }
                Test::ClientIp(nets)
            }
        })
    }

    /// `HostRegexp`: one argument is a Go regexp (v3); a `{name:re}` template, or several
    /// arguments, are Traefik v2's syntax (gorilla/mux templates, literal names).
    fn host_regexps(&self, call: &Call) -> Result<Test, RuleError> {
        let n = call.args.len();
        let mut res = Vec::with_capacity(n);
        for a in &call.args {
            if !a.value.is_ascii() {
                return Err(self.err(
                    a.offset,
                    "`HostRegexp` values must be ASCII; write names in punycode (xn--...)",
                ));
            }
            let built = if goregex::has_template(&a.value) {
                goregex::host_template(&a.value).and_then(|r| goregex::build(&r))
            } else if n > 1 {
                goregex::host_literal(&a.value).and_then(|r| goregex::build(&r))
            } else {
                goregex::compile_go(&a.value)
            };
            res.push(self.regex_result(call, a, built)?);
        }
        Ok(Test::HostRegexp(res))
    }

    /// `QueryRegexp(key[, regexp])`: without the regexp, the key with an empty value.
    fn query_regexp(&self, call: &Call) -> Result<Test, RuleError> {
        let args = &call.args;
        self.arity(call, args.len() <= 2, "1 or 2 arguments (key[, regexp])")?;
        let key = args[0].value.as_str().into();
        Ok(match args.get(1) {
            Some(re) => Test::QueryRegexp {
                key,
                re: self.regex(call, re)?,
            },
            None => Test::Query {
                key,
                value: "".into(),
            },
        })
    }

    fn host_pat(&self, a: &Arg) -> Result<HostPat, RuleError> {
        if !a.value.is_ascii() {
            return Err(self.err(
                a.offset,
                "`Host` values must be ASCII; write names in punycode (xn--...)",
            ));
        }
        let lower = a.value.to_ascii_lowercase();
        if lower == "*" {
            return Ok(HostPat::Any);
        }
        let h = lower.strip_suffix('.').unwrap_or(&lower);
        Ok(if h.is_empty() {
            HostPat::Never
        } else if h == "*" {
            HostPat::OneLabel
        } else if let Some(rest) = h.strip_prefix("**") {
            if rest.starts_with('.') {
                HostPat::Double(rest.into())
            } else {
                HostPat::Never
            }
        } else if let Some(rest) = h.strip_prefix('*') {
            if rest.starts_with('.') {
                HostPat::Single(rest.into())
            } else {
                HostPat::Never
            }
        } else {
            HostPat::Exact(h.into())
        })
    }

    fn path(&self, call: &Call, a: &Arg) -> Result<Box<str>, RuleError> {
        let name = call.kind.name();
        if !a.value.starts_with('/') {
            return Err(self.err(
                a.offset,
                format!("`{name}` value `{}` does not start with `/`", a.value),
            ));
        }
        if goregex::has_template(&a.value) {
            return Err(self.err(
                a.offset,
                format!(
                    "`{name}` value `{}` looks like a Traefik v2 template; v3 reads the braces literally \
                     and boma refuses the ambiguity: use PathRegexp(`^...$`) instead",
                    a.value
                ),
            ));
        }
        Ok(a.value.as_str().into())
    }

    fn regex(&self, call: &Call, a: &Arg) -> Result<Regex, RuleError> {
        self.regex_result(call, a, goregex::compile_go(&a.value))
    }

    fn regex_result(
        &self,
        call: &Call,
        a: &Arg,
        r: Result<Regex, String>,
    ) -> Result<Regex, RuleError> {
        r.map_err(|m| {
            self.err(
                a.offset + 1,
                format!("invalid regexp in `{}`: {m}", call.kind.name()),
            )
        })
    }

    fn headers(&self, call: &Call) -> Result<Test, RuleError> {
        let regexp = matches!(call.kind, Kind::HeaderRegexp | Kind::HeadersRegexp);
        let mut plain = Vec::new();
        let mut res = Vec::new();
        for pair in call.args.chunks_exact(2) {
            let name = HeaderName::from_bytes(pair[0].value.as_bytes())
                .ok()
                .filter(|n| *n != http::header::HOST);
            if regexp {
                res.push((name, self.regex(call, &pair[1])?));
            } else {
                plain.push((name, pair[1].value.as_str().into()));
            }
        }
        Ok(if regexp {
            Test::HeadersRegexp(res)
        } else {
            Test::Headers(plain)
        })
    }

    fn query(&self, call: &Call) -> Result<Test, RuleError> {
        let args = &call.args;
        let with_eq = args.iter().filter(|a| a.value.contains('=')).count();
        let v3 = match (args.len(), with_eq) {
            (1, 0) => true,
            (2, _) if !args[0].value.contains('=') => true,
            (_, 0) => {
                return Err(self.err(
                    call.offset,
                    format!(
                        "`Query` takes 1 or 2 arguments (key[, value]), got {}",
                        args.len()
                    ),
                ));
            }
            (_, k) if k == args.len() => false,
            _ => {
                return Err(self.err(
                    call.offset,
                    "`Query` mixes the v2 form Query(`key=value`, ...) with the v3 form \
                     Query(`key`, `value`); write one of them",
                ));
            }
        };
        if v3 {
            let value = args.get(1).map_or("", |a| a.value.as_str());
            return Ok(Test::Query {
                key: args[0].value.as_str().into(),
                value: value.into(),
            });
        }
        let mut pairs = Vec::with_capacity(args.len());
        for a in args {
            let (key, value) = a.value.split_once('=').unwrap_or((&a.value, ""));
            if key.is_empty() {
                return Err(self.err(a.offset, "empty key in `Query`"));
            }
            if goregex::has_template(value) {
                return Err(self.err(
                    a.offset,
                    "v2 query templates `{name:regexp}` are not supported; use QueryRegexp(`key`, `regexp`)",
                ));
            }
            pairs.push((key.into(), (!value.is_empty()).then(|| value.into())));
        }
        Ok(Test::QueryV2(pairs))
    }
}

impl Node {
    pub(crate) fn matches(&self, req: &Request<'_>, path: &[u8]) -> bool {
        match self {
            Node::All(xs) => xs.iter().all(|x| x.matches(req, path)),
            Node::Any(xs) => xs.iter().any(|x| x.matches(req, path)),
            Node::Leaf { negated, test } => test.matches(req, path) != *negated,
        }
    }

    pub(crate) fn needs_path(&self) -> bool {
        match self {
            Node::All(xs) | Node::Any(xs) => xs.iter().any(Node::needs_path),
            Node::Leaf { test, .. } => {
                matches!(
                    test,
                    Test::Path(_) | Test::PathPrefix(_) | Test::PathRegexp(_)
                )
            }
        }
    }

    /// See [`super::Rule::mentioned_hosts`]: walked in the order the rule was written.
    pub(crate) fn mentioned(&self, out: &mut Vec<String>) {
        match self {
            Node::All(xs) | Node::Any(xs) => xs.iter().for_each(|x| x.mentioned(out)),
            Node::Leaf {
                negated: false,
                test: Test::Host(pats),
            } => {
                for pat in pats {
                    let HostPat::Exact(h) = pat else { continue };
                    // Names only: IP literals and host:port forms are not DNS names.
                    let name = !h.contains([':', '[']) && h.parse::<IpAddr>().is_err();
                    if name && !out.iter().any(|m| **m == **h) {
                        out.push(h.to_string());
                    }
                }
            }
            Node::Leaf { .. } => {}
        }
    }

    /// See [`super::Rule::host_keys`].
    pub(crate) fn host_keys(&self) -> Option<Vec<String>> {
        match self {
            Node::Leaf {
                negated: false,
                test: Test::Host(pats),
            } => {
                let mut keys = Vec::new();
                for p in pats {
                    match p {
                        HostPat::Exact(h) => push_unique(&mut keys, h),
                        HostPat::Never => {}
                        _ => return None,
                    }
                }
                Some(keys)
            }
            Node::Leaf { .. } => None,
            Node::All(xs) => xs
                .iter()
                .filter_map(Node::host_keys)
                .reduce(|acc, k| acc.into_iter().filter(|h| k.contains(h)).collect()),
            Node::Any(xs) => {
                let mut keys = Vec::new();
                for x in xs {
                    for k in x.host_keys()? {
                        push_unique(&mut keys, &k);
                    }
                }
                Some(keys)
            }
        }
    }
}

fn push_unique(keys: &mut Vec<String>, h: &str) {
    if !keys.iter().any(|k| k == h) {
        keys.push(h.to_owned());
    }
}

impl HostPat {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPat::Exact(h) => **h == *host,
            HostPat::Any => true,
            HostPat::OneLabel => !host.is_empty() && !host.contains('.'),
            HostPat::Single(suffix) => host.find('.').is_some_and(|i| host[i..] == **suffix),
            HostPat::Double(suffix) => host.len() > suffix.len() && host.ends_with(&**suffix),
            HostPat::Never => false,
        }
    }
}

impl Test {
    fn matches(&self, req: &Request<'_>, path: &[u8]) -> bool {
        let query = req.query.unwrap_or("");
        match self {
            Test::Host(pats) => pats.iter().any(|p| p.matches(req.host)),
            Test::HostRegexp(res) => res.iter().any(|re| re.is_match(req.host)),
            Test::Path(ps) => ps.iter().any(|p| p.as_bytes() == path),
            Test::PathPrefix(ps) => ps.iter().any(|p| path.starts_with(p.as_bytes())),
            Test::PathRegexp(re) => re.is_match(&text(path)),
            Test::Method(ms) => ms.iter().any(|m| **m == *req.method.as_str()),
            Test::Headers(pairs) => pairs.iter().all(|(name, value)| {
                name.as_ref().is_some_and(|n| {
                    req.headers
                        .get_all(n)
                        .iter()
                        .any(|v| v.as_bytes() == value.as_bytes())
                })
            }),
            Test::HeadersRegexp(pairs) => pairs.iter().all(|(name, re)| {
                name.as_ref().is_some_and(|n| {
                    req.headers
                        .get_all(n)
                        .iter()
                        .any(|v| re.is_match(&text(v.as_bytes())))
                })
            }),
            Test::Query { key, value } => query_pairs(query).any(|(k, v)| {
                query_eq(k, key.as_bytes()) == Some(true)
                    && query_eq(v, value.as_bytes()) == Some(true)
            }),
            Test::QueryV2(pairs) => pairs.iter().all(|(key, want)| {
                let Some(v) = first_value(query, key) else {
                    return false;
                };
                match want {
                    None => query_eq(v, b"").is_some(),
                    Some(w) => query_eq(v, w.as_bytes()) == Some(true),
                }
            }),
            Test::QueryRegexp { key, re } => query_pairs(query).any(|(k, v)| {
                query_eq(k, key.as_bytes()) == Some(true)
                    && query_decode(v).is_some_and(|v| re.is_match(&v))
            }),
            Test::ClientIp(nets) => nets.iter().any(|n| n.contains(req.client_ip)),
        }
    }
}

/// gorilla/mux's `findFirstQueryKey`: the raw value of the first pair whose decoded key is `key`,
/// splitting on `&` and `;`.
fn first_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| query_eq(k, key.as_bytes()) == Some(true))
        .map(|(_, v)| v)
}
