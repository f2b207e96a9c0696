//! The default rule template (`defaultRule`): the part of Go's `text/template` that Traefik users
//! write there. ``Host(`{{ normalize .Name }}`)`` is Traefik's default; boma also accepts, for
//! example, ``Host(`{{ .Name }}.village.lan`)`` or
//! ``Host(`{{ index .Labels "com.docker.compose.service" }}.lan`)``.
//!
//! Supported: text and `{{ }}` actions (with `{{-`/`-}}` trimming), pipelines (`a | f`), the
//! fields `.Name`, `.ContainerName` and `.Labels` (`.Labels.key` or `index .Labels "key"`),
//! string literals ("…" and `…`), parentheses, and the functions `normalize`, `lower`, `upper`,
//! `title`, `trim`, `trimPrefix`, `trimSuffix`, `replace`, `default`, `index` and `printf` (`%s`,
//! `%v`, `%%`). Anything else (control structures, variables, other sprig functions) is refused
//! when the configuration is loaded, not when a container appears.
//!
//! Pure: parsing and rendering never panic, never recurse without bound, and the output is
//! bounded.

use std::collections::BTreeMap;

/// Longest template accepted.
const MAX_SRC: usize = 4096;
/// Longest output rendered.
const MAX_OUT: usize = 16 * 1024;
/// Deepest nesting of parentheses.
const MAX_DEPTH: usize = 16;

/// Traefik's default rule template.
pub const DEFAULT_RULE: &str = "Host(`{{ normalize .Name }}`)";

/// A template that cannot be parsed, or failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("default rule template: {0}")]
pub struct TemplateError(pub String);

/// What the template sees.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// The service name (compose `<service>-<project>` or the container name), normalized.
    pub name: &'a str,
    /// The container name, without Docker's leading `/`.
    pub container_name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(Vec<String>),
    Str(String),
    Call(String, Vec<Operand>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action(Operand),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

const FUNCS: [&str; 11] = [
    "normalize",
    "lower",
    "upper",
    "title",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "default",
    "index",
    "printf",
];

impl Template {
    /// A template that renders nothing (every router then needs a `rule` label).
    pub fn empty() -> Template {
        Template { pieces: Vec::new() }
    }

    /// Parse `src`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        if src.len() > MAX_SRC {
            return Err(TemplateError(format!("longer than {MAX_SRC} bytes")));
        }
        let mut pieces = Vec::new();
        let mut rest = src;
        let mut trim_next = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                push_text(&mut pieces, rest, trim_next, false);
                break;
            };
            let inner_start = open + 2;
            let trim_left = rest[inner_start..].starts_with("- ")
                || rest[inner_start..].starts_with("-\t")
                || rest[inner_start..].starts_with("-\n");
            push_text(&mut pieces, &rest[..open], trim_next, trim_left);
            let body_start = if trim_left {
                inner_start + 1
            } else {
                inner_start
            };
            let Some(close) = rest[body_start..].find("}}") else {
                return Err(TemplateError("unclosed action `{{`".into()));
            };
            let mut body = &rest[body_start..body_start + close];
            trim_next = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
            if trim_next {
                body = &body[..body.len() - 1];
            }
            let mut p = Parser {
                toks: lex(body)?,
                pos: 0,
            };
            let op = p.pipeline(0)?;
            if p.pos != p.toks.len() {
                return Err(TemplateError(format!("unexpected text in action `{body}`")));
            }
            pieces.push(Piece::Action(op));
            rest = &rest[body_start + close + 2..];
        }
        Ok(Template { pieces })
    }

    /// Render for one container.
    pub fn render(&self, model: &Model<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Action(op) => match eval(op, model)? {
                    Val::Str(s) => out.push_str(&s),
                    Val::Labels => out.push_str(&format!("map{:?}", model.labels)),
                },
            }
            if out.len() > MAX_OUT {
                return Err(TemplateError(format!("output longer than {MAX_OUT} bytes")));
            }
        }
        Ok(out)
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start();
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        pieces.push(Piece::Text(t.to_string()));
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Pipe,
    Open,
    Close,
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| TemplateError("unterminated raw string".into()))?;
                toks.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(TemplateError("unterminated string".into()));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '.' => {
                let mut path = Vec::new();
                while chars.get(i) == Some(&'.') {
                    i += 1;
                    let start = i;
                    while chars
                        .get(i)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                    {
                        i += 1;
                    }
                    let seg: String = chars[start..i].iter().collect();
                    if seg.is_empty() && !path.is_empty() {
                        return Err(TemplateError("empty field name after `.`".into()));
                    }
                    if !seg.is_empty() {
                        path.push(seg);
                    }
                }
                toks.push(Tok::Field(path));
            }
            c if c.is_alphabetic() => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            '$' => return Err(TemplateError("template variables are not supported".into())),
            other => return Err(TemplateError(format!("unexpected character `{other}`"))),
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn pipeline(&mut self, depth: usize) -> Result<Operand, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError("nested too deeply".into()));
        }
        let mut acc = self.command(depth)?;
        while self.toks.get(self.pos) == Some(&Tok::Pipe) {
            self.pos += 1;
            match self.command(depth)? {
                Operand::Call(name, mut args) => {
                    args.push(acc);
                    acc = Operand::Call(name, args);
                }
                _ => return Err(TemplateError("only a function can follow `|`".into())),
            }
        }
        Ok(acc)
    }

    fn command(&mut self, depth: usize) -> Result<Operand, TemplateError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                if !FUNCS.contains(&name.as_str()) {
                    let what = match name.as_str() {
                        "if" | "else" | "end" | "range" | "with" | "define" | "block"
                        | "template" => "control structures are",
                        _ => "this function is",
                    };
                    return Err(TemplateError(format!("`{name}`: {what} not supported")));
                }
                let mut args = Vec::new();
                while let Some(tok) = self.toks.get(self.pos) {
                    if matches!(tok, Tok::Pipe | Tok::Close) {
                        break;
                    }
                    args.push(self.operand(depth)?);
                }
                Ok(Operand::Call(name, args))
            }
            Some(_) => {
                let op = self.operand(depth)?;
                match self.toks.get(self.pos) {
                    None | Some(Tok::Pipe | Tok::Close) => Ok(op),
                    Some(_) => Err(TemplateError("a value cannot take arguments".into())),
                }
            }
            None => Err(TemplateError("empty action".into())),
        }
    }

    fn operand(&mut self, depth: usize) -> Result<Operand, TemplateError> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Field(path)) => Ok(Operand::Field(path)),
            Some(Tok::Str(s)) => Ok(Operand::Str(s)),
            Some(Tok::Open) => {
                let inner = self.pipeline(depth + 1)?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(TemplateError("missing `)`".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Ident(name)) => Ok(Operand::Call(name, Vec::new())),
            Some(Tok::Pipe | Tok::Close) | None => Err(TemplateError("missing operand".into())),
        }
    }
}

enum Val {
    Str(String),
    Labels,
}

fn eval(op: &Operand, m: &Model<'_>) -> Result<Val, TemplateError> {
    match op {
        Operand::Str(s) => Ok(Val::Str(s.clone())),
        Operand::Field(path) => field(path, m),
        Operand::Call(name, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, m)?);
            }
            call(name, vals, m)
        }
    }
}

fn field(path: &[String], m: &Model<'_>) -> Result<Val, TemplateError> {
    match path {
        [] => Err(TemplateError("`.` alone has no text value".into())),
        [f] if f == "Name" => Ok(Val::Str(m.name.to_string())),
        [f] if f == "ContainerName" => Ok(Val::Str(m.container_name.to_string())),
        [f] if f == "Labels" => Ok(Val::Labels),
        [f, key] if f == "Labels" => Ok(Val::Str(m.labels.get(key).cloned().unwrap_or_default())),
        _ => Err(TemplateError(format!(
            "unknown field `.{}` (known: .Name, .ContainerName, .Labels)",
            path.join(".")
        ))),
    }
}

fn text(v: Val, func: &str) -> Result<String, TemplateError> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Labels => Err(TemplateError(format!(
            "{func}: .Labels is a map; use `index .Labels \"key\"`"
        ))),
    }
}

fn call(name: &str, args: Vec<Val>, m: &Model<'_>) -> Result<Val, TemplateError> {
    let argc = args.len();
    let arity = |n: usize| {
        if argc == n {
            Ok(())
        } else {
            Err(TemplateError(format!(
                "{name} takes {n} argument(s), got {argc}"
            )))
        }
    };
    let out = match name {
        "index" => {
            arity(2)?;
            let mut it = args.into_iter();
            let (map, key) = (it.next(), it.next());
            match (map, key) {
                (Some(Val::Labels), Some(Val::Str(k))) => {
                    m.labels.get(&k).cloned().unwrap_or_default()
                }
                _ => return Err(TemplateError("index: expects .Labels and a key".into())),
            }
        }
        "printf" => {
            let mut it = args.into_iter();
            let Some(fmt) = it.next() else {
                return Err(TemplateError("printf needs a format".into()));
            };
            let fmt = text(fmt, name)?;
            let rest: Vec<String> = it.map(|v| text(v, name)).collect::<Result<_, _>>()?;
            printf(&fmt, &rest)?
        }
        _ => {
            let a: Vec<String> = args
                .into_iter()
                .map(|v| text(v, name))
                .collect::<Result<_, _>>()?;
            match (name, a.as_slice()) {
                ("normalize", [s]) => normalize(s),
                ("lower", [s]) => s.to_lowercase(),
                ("upper", [s]) => s.to_uppercase(),
                ("title", [s]) => title(s),
                ("trim", [s]) => s.trim().to_string(),
                ("trimPrefix", [p, s]) => s.strip_prefix(p.as_str()).unwrap_or(s).to_string(),
                ("trimSuffix", [p, s]) => s.strip_suffix(p.as_str()).unwrap_or(s).to_string(),
                ("replace", [old, new, s]) => {
                    if s.len().saturating_mul(new.len().max(1)) > MAX_OUT * 4 {
                        return Err(TemplateError("replace: result too long".into()));
                    }
                    s.replace(old.as_str(), new)
                }
                ("default", [d, s]) => {
                    if s.is_empty() {
                        d.clone()
                    } else {
                        s.clone()
                    }
                }
                _ => {
                    let n = match name {
                        "trimPrefix" | "trimSuffix" | "default" => 2,
                        "replace" => 3,
                        _ => 1,
                    };
                    arity(n)?;
                    return Err(TemplateError(format!("{name}: bad arguments")));
                }
            }
        }
    };
    Ok(Val::Str(out))
}

fn printf(fmt: &str, args: &[String]) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'v') => match it.next() {
                Some(a) => out.push_str(a),
                None => out.push_str("%!s(MISSING)"),
            },
            other => {
                return Err(TemplateError(format!(
                    "printf: only %s, %v and %% are supported (got %{})",
                    other.map(String::from).unwrap_or_default()
                )));
            }
        }
    }
    Ok(out)
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Traefik's `normalize`: runs of characters that are neither letters nor digits become one
/// `-`, and none is left at either end (`/my_app.1` → `my-app-1`).
pub fn normalize(s: &str) -> String {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
