//! Grammar and syntax tree of the rule language, as Go's expression parser reads Traefik rules:
//!
//! ```text
//! rule    = or EOF
//! or      = and { "||" and }          (left-assoc; && binds tighter than ||)
//! and     = unary { "&&" unary }
//! unary   = "!" unary | primary
//! primary = "(" or ")" | NAME "(" [ STRING { "," STRING } [ "," ] ] ")"
//! ```
//!
//! Matcher names are resolved here, with Traefik's spelling rule: the canonical name
//! (`HostRegexp`), all lower case, all upper case, or capitalised lower case (`Hostregexp`).
//! Chains of `&&`/`||` become flat lists, so only parentheses and `!` deepen the tree; both are
//! bounded by [`MAX_DEPTH`]. This module checks syntax only, not argument counts or values.

use super::lexer::{Lexer, Tok, Token};
use super::{MAX_DEPTH, MAX_RULE_LEN, RuleError};

/// Every matcher the parser knows. v2-only names are `HostHeader`, `Headers`, `HeadersRegexp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Host,
    HostHeader,
    HostRegexp,
    Path,
    PathPrefix,
    PathRegexp,
    Method,
    Header,
    HeaderRegexp,
    Headers,
    HeadersRegexp,
    Query,
    QueryRegexp,
    ClientIp,
}

const KINDS: [(Kind, &str); 14] = [
    (Kind::Host, "Host"),
    (Kind::HostRegexp, "HostRegexp"),
    (Kind::Path, "Path"),
    (Kind::PathPrefix, "PathPrefix"),
    (Kind::PathRegexp, "PathRegexp"),
    (Kind::Method, "Method"),
    (Kind::Header, "Header"),
    (Kind::HeaderRegexp, "HeaderRegexp"),
    (Kind::Query, "Query"),
    (Kind::QueryRegexp, "QueryRegexp"),
    (Kind::ClientIp, "ClientIP"),
    (Kind::HostHeader, "HostHeader"),
    (Kind::Headers, "Headers"),
    (Kind::HeadersRegexp, "HeadersRegexp"),
];

/// The v3 names, listed in "unknown matcher" errors.
const V3_NAMES: &str = "Host, HostRegexp, Path, PathPrefix, PathRegexp, Method, Header, HeaderRegexp, Query, QueryRegexp, ClientIP";

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("?", |(_, n)| n)
    }

    /// Resolve a name as Traefik does: exact, lower, UPPER or Capitalised-lower spelling.
    fn resolve(ident: &str) -> Option<Kind> {
        KINDS.iter().find_map(|&(kind, name)| {
            let lower = name.to_ascii_lowercase();
            let mut title = lower.clone();
            if let Some(first) = title.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            let ok = ident == name
                || ident == lower
                || ident == name.to_ascii_uppercase()
                || ident == title;
            ok.then_some(kind)
        })
    }
}

/// One string argument, with the offset of its opening quote.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub(crate) value: String,
    pub(crate) offset: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) kind: Kind,
    /// Offset of the matcher name.
    pub(crate) offset: usize,
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Call(Call),
}

/// Parse a whole rule into its tree.
pub(crate) fn parse(src: &str) -> Result<Expr, RuleError> {
    if src.len() > MAX_RULE_LEN {
        return Err(RuleError::at(
            src,
            MAX_RULE_LEN,
            format!(
                "rule is {} bytes long; the limit is {MAX_RULE_LEN}",
                src.len()
            ),
        ));
    }
    let mut p = Parser {
        src,
        lexer: Lexer::new(src),
        tok: Token {
            tok: Tok::Eof,
            offset: 0,
        },
        depth: 0,
    };
    p.bump()?;
    if p.tok.tok == Tok::Eof {
        return Err(p.err(0, "empty rule"));
    }
    let expr = p.or()?;
    match &p.tok.tok {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.err(p.tok.offset, "unexpected `)` without a matching `(`")),
        t => Err(p.err(
            p.tok.offset,
            format!(
                "unexpected {} after a complete expression; join matchers with `&&` or `||`",
                t.describe()
            ),
        )),
    }
}

/// Arguments of non-negated `Host` matchers that start with `**.` (for the default priority).
pub(crate) fn double_wildcards(expr: &Expr) -> usize {
    fn walk(e: &Expr, negated: bool) -> usize {
        match e {
            Expr::And(xs) | Expr::Or(xs) => xs.iter().map(|x| walk(x, negated)).sum(),
            Expr::Not(x) => walk(x, !negated),
            Expr::Call(c) if c.kind == Kind::Host && !negated => {
                c.args.iter().filter(|a| a.value.starts_with("**.")).count()
            }
            Expr::Call(_) => 0,
        }
    }
    walk(expr, false)
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    tok: Token,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, offset: usize, msg: impl Into<String>) -> RuleError {
        RuleError::at(self.src, offset, msg)
    }

    fn bump(&mut self) -> Result<Token, RuleError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn enter(&mut self, offset: usize) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(offset, format!("rule nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut items = vec![self.and()?];
        while self.tok.tok == Tok::Or {
            self.bump()?;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut items = vec![self.unary()?];
        while self.tok.tok == Tok::And {
            self.bump()?;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        if self.tok.tok != Tok::Not {
            return self.primary();
        }
        let bang = self.bump()?;
        self.enter(bang.offset)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let t = self.bump()?;
        match t.tok {
            Tok::LParen => {
                self.enter(t.offset)?;
                if self.tok.tok == Tok::RParen {
                    return Err(self.err(self.tok.offset, "empty parentheses: expected a matcher"));
                }
                let inner = self.or()?;
                self.depth -= 1;
                match self.tok.tok {
                    Tok::RParen => {
                        self.bump()?;
                        Ok(inner)
                    }
                    Tok::Eof => {
                        Err(self.err(t.offset, "unbalanced parentheses: this `(` is never closed"))
                    }
                    ref other => Err(self.err(
                        self.tok.offset,
                        format!("expected `)`, `&&` or `||`, found {}", other.describe()),
                    )),
                }
            }
            Tok::Ident(name) => self.call(name, t.offset),
            Tok::RParen => Err(self.err(t.offset, "unexpected `)`: expected a matcher")),
            other => Err(self.err(
                t.offset,
                format!("expected a matcher, found {}", other.describe()),
            )),
        }
    }

    fn call(&mut self, name: String, offset: usize) -> Result<Expr, RuleError> {
        let Some(kind) = Kind::resolve(&name) else {
            return Err(self.err(offset, unknown_matcher(&name)));
        };
        if self.tok.tok != Tok::LParen {
            return Err(self.err(
                self.tok.offset,
                format!(
                    "expected `(` after `{name}`, found {}",
                    self.tok.tok.describe()
                ),
            ));
        }
        let open = self.bump()?;
        let mut args = Vec::new();
        loop {
            let t = self.bump()?;
            match t.tok {
                Tok::RParen => break,
                Tok::Str(value) => args.push(Arg {
                    value,
                    offset: t.offset,
                }),
                Tok::Eof => {
                    return Err(self.err(
                        open.offset,
                        "unbalanced parentheses: this `(` is never closed",
                    ));
                }
                other => {
                    return Err(self.err(
                        t.offset,
                        format!(
                            "expected a string argument or `)`, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
            let sep = self.bump()?;
            match sep.tok {
                Tok::RParen => break,
                Tok::Comma => {}
                Tok::Eof => {
                    return Err(self.err(
                        open.offset,
                        "unbalanced parentheses: this `(` is never closed",
                    ));
                }
                other => {
                    return Err(self.err(
                        sep.offset,
                        format!(
                            "expected `,` or `)` after an argument, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
        }
        Ok(Expr::Call(Call { kind, offset, args }))
    }
}

fn unknown_matcher(name: &str) -> String {
    let mut msg = format!("unknown matcher `{name}`; expected one of {V3_NAMES}");
    let best = KINDS
        .iter()
        .map(|(_, n)| {
            (
                edit_distance(&name.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                *n,
            )
        })
        .min_by_key(|(d, _)| *d);
    if let Some((d, n)) = best {
        if d == 0 {
            msg = format!(
                "unknown matcher `{name}`: write `{n}`, `{}`, `{}` or `{}{}`",
                n.to_ascii_lowercase(),
                n.to_ascii_uppercase(),
                &n[..1],
                n[1..].to_ascii_lowercase()
            );
        } else if d <= 2 {
            msg.push_str(&format!(" (did you mean `{n}`?)"));
        }
    }
    msg
}

/// Levenshtein distance over chars; inputs here are short identifiers.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    if a.chars().count() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
