//! Provider `constraints`: Traefik's expression over a container's labels that decides whether
//! the container is considered at all, e.g.
//! ``Label(`a.b`, `c`) && !LabelRegex(`env`, `^dev-.*`)``.
//!
//! Grammar (Traefik's predicate language): `Label(key, value)` (exact value), `LabelRegex(key,
//! re)` (unanchored regexp on the value, a missing label reads as ""), `!`, `&&` (binds tighter),
//! `||`, parentheses; strings in backticks or double quotes. Parsed once when the configuration
//! is loaded; evaluation is pure and cannot fail.

use std::collections::BTreeMap;

use regex::Regex;

/// Longest expression accepted.
const MAX_LEN: usize = 4096;
/// Deepest nesting of `!` and parentheses.
const MAX_DEPTH: usize = 32;

/// An expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("constraints: {0}")]
pub struct ConstraintError(pub String);

/// A parsed constraint expression.
#[derive(Debug, Clone)]
pub enum Constraint {
    Label(String, String),
    LabelRegex(String, Regex),
    Not(Box<Constraint>),
    And(Vec<Constraint>),
    Or(Vec<Constraint>),
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Label(a, b), Self::Label(c, d)) => a == c && b == d,
            (Self::LabelRegex(a, r), Self::LabelRegex(b, s)) => a == b && r.as_str() == s.as_str(),
            (Self::Not(a), Self::Not(b)) => a == b,
            (Self::And(a), Self::And(b)) | (Self::Or(a), Self::Or(b)) => a == b,
            _ => false,
        }
    }
}

impl Constraint {
    /// Parse an expression.
    pub fn parse(src: &str) -> Result<Constraint, ConstraintError> {
        if src.len() > MAX_LEN {
            return Err(ConstraintError(format!("longer than {MAX_LEN} bytes")));
        }
        let mut p = Parser {
            toks: lex(src)?,
            pos: 0,
        };
        let c = p.or(0)?;
        match p.toks.get(p.pos) {
            None => Ok(c),
            Some(t) => Err(ConstraintError(format!("unexpected {t:?}"))),
        }
    }

    /// Does a container with these labels pass?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Label(k, v) => labels.get(k).map_or("", String::as_str) == v,
            Self::LabelRegex(k, re) => re.is_match(labels.get(k).map_or("", String::as_str)),
            Self::Not(c) => !c.matches(labels),
            Self::And(cs) => cs.iter().all(|c| c.matches(labels)),
            Self::Or(cs) => cs.iter().any(|c| c.matches(labels)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    And,
    Or,
    Not,
}

fn lex(src: &str) -> Result<Vec<Tok>, ConstraintError> {
    let mut out = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            ',' => out.push(Tok::Comma),
            '!' => out.push(Tok::Not),
            '&' | '|' => {
                if it.next().map(|(_, d)| d) != Some(c) {
                    return Err(ConstraintError(format!("`{c}` must be doubled")));
                }
                out.push(if c == '&' { Tok::And } else { Tok::Or });
            }
            '`' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                        None => return Err(ConstraintError("unterminated string".into())),
                    }
                }
                out.push(Tok::Str(s));
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match it.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, c)) => s.push(c),
                            None => return Err(ConstraintError("unterminated string".into())),
                        },
                        Some((_, c)) => s.push(c),
                        None => return Err(ConstraintError("unterminated string".into())),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphabetic() => {
                let mut s = String::from(c);
                while let Some(&(_, d)) = it.peek() {
                    if !d.is_alphanumeric() {
                        break;
                    }
                    s.push(d);
                    it.next();
                }
                out.push(Tok::Ident(s));
            }
            other => return Err(ConstraintError(format!("unexpected character `{other}`"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn or(&mut self, depth: usize) -> Result<Constraint, ConstraintError> {
        let mut items = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Constraint::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Constraint, ConstraintError> {
        let mut items = vec![self.unary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Constraint::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Constraint, ConstraintError> {
        if depth > MAX_DEPTH {
            return Err(ConstraintError("nested too deeply".into()));
        }
        let tok = self.peek().cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Not) => Ok(Constraint::Not(Box::new(self.unary(depth + 1)?))),
            Some(Tok::Open) => {
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(ConstraintError("missing `)`".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Ident(name)) => self.call(&name),
            other => Err(ConstraintError(format!(
                "expected `Label(...)`, `LabelRegex(...)`, `!` or `(`, found {other:?}"
            ))),
        }
    }

    fn call(&mut self, name: &str) -> Result<Constraint, ConstraintError> {
        if self.peek() != Some(&Tok::Open) {
            return Err(ConstraintError(format!("`{name}` must be followed by `(`")));
        }
        self.pos += 1;
        let mut args = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Close) => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    args.push(s);
                    match self.peek() {
                        Some(Tok::Comma) => self.pos += 1,
                        Some(Tok::Close) => {}
                        _ => return Err(ConstraintError(format!("`{name}`: expected `,` or `)`"))),
                    }
                }
                _ => return Err(ConstraintError(format!("`{name}`: arguments are strings"))),
            }
        }
        let [key, value] = <[String; 2]>::try_from(args)
            .map_err(|a| ConstraintError(format!("`{name}` takes 2 arguments, got {}", a.len())))?;
        match name {
            "Label" => Ok(Constraint::Label(key, value)),
            "LabelRegex" => {
                let re = crate::rule::goregex::compile_go(&value)
                    .map_err(|e| ConstraintError(format!("LabelRegex `{value}`: {e}")))?;
                Ok(Constraint::LabelRegex(key, re))
            }
            other => Err(ConstraintError(format!(
                "unknown function `{other}` (expected Label or LabelRegex)"
            ))),
        }
    }
}
