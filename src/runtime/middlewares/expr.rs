//! The small expression language of `circuitBreaker.expression` and `buffering.retryExpression`
//! (Traefik hands both to vulcand/predicate): calls of known functions with numeric arguments,
//! compared with a number or a string (`NetworkErrorRatio() > 0.30`, `RequestMethod() == "GET"`)
//! or used alone when they answer a boolean (`IsNetworkError()`), joined by `&&` and `||` with
//! the usual precedence, and parentheses.
//!
//! Parsed once at compile time against the caller's function table, so a typo, a wrong
//! argument count or comparing a number with a string is a configuration error, never a
//! request-time surprise. Evaluation allocates nothing.

/// What a function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Num,
    Str,
    Bool,
}

/// One function the caller offers: its name, how many numeric arguments, what it answers.
pub struct Func {
    pub name: &'static str,
    pub arity: usize,
    pub ret: Ret,
}

/// A call in a parsed expression: the index of the function in the caller's table and its
/// arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: usize,
    pub args: Vec<f64>,
}

/// A value a function hands back at evaluation time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Num(f64),
    Str(&'a str),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Num(f64),
    Str(Box<str>),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Test(Call),
    Cmp(Call, Op, Lit),
}

impl Expr {
    /// Parse `text` against `funcs`; the error says what is wrong and where.
    pub fn parse(text: &str, funcs: &[Func]) -> Result<Expr, String> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens: &tokens,
            at: 0,
            funcs,
            depth: 0,
        };
        let e = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
        }
    }

    /// Evaluate with `value` answering each call.
    pub fn eval<'a>(&self, value: &impl Fn(&Call) -> Value<'a>) -> bool {
        match self {
            Expr::Or(all) => all.iter().any(|e| e.eval(value)),
            Expr::And(all) => all.iter().all(|e| e.eval(value)),
            Expr::Test(c) => matches!(value(c), Value::Bool(true)),
            Expr::Cmp(c, op, lit) => match (value(c), lit) {
                (Value::Num(a), Lit::Num(b)) => match op {
                    Op::Eq => a == *b,
                    Op::Ne => a != *b,
                    Op::Lt => a < *b,
                    Op::Le => a <= *b,
                    Op::Gt => a > *b,
                    Op::Ge => a >= *b,
                },
                (Value::Str(a), Lit::Str(b)) => match op {
                    Op::Eq => a == &**b,
                    Op::Ne => a != &**b,
                    _ => false,
                },
                _ => false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(Op),
    And,
    Or,
    Open,
    Close,
    Comma,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2).unwrap_or(&[]);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => (Tok::Open, 1),
            b')' => (Tok::Close, 1),
            b',' => (Tok::Comma, 1),
            _ if two == b"&&" => (Tok::And, 2),
            _ if two == b"||" => (Tok::Or, 2),
            _ if two == b"==" => (Tok::Op(Op::Eq), 2),
            _ if two == b"!=" => (Tok::Op(Op::Ne), 2),
            _ if two == b"<=" => (Tok::Op(Op::Le), 2),
            _ if two == b">=" => (Tok::Op(Op::Ge), 2),
            b'<' => (Tok::Op(Op::Lt), 1),
            b'>' => (Tok::Op(Op::Gt), 1),
            b'"' | b'`' => {
                let end = (b[i + 1..].iter().position(|&x| x == c))
                    .ok_or_else(|| format!("unterminated string at byte {i}"))?;
                let s = &text[i + 1..i + 1 + end];
                (Tok::Str(s.to_string()), end + 2)
            }
            b'0'..=b'9' | b'.' | b'-' => {
                let len = (b[i + 1..].iter())
                    .take_while(|x| x.is_ascii_digit() || **x == b'.')
                    .count()
                    + 1;
                let s = &text[i..i + len];
                let n: f64 = s.parse().map_err(|_| format!("bad number {s:?}"))?;
                (Tok::Num(n), len)
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let len = (b[i..].iter())
                    .take_while(|x| x.is_ascii_alphanumeric() || **x == b'_')
                    .count();
                (Tok::Ident(text[i..i + len].to_string()), len)
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {ch:?} at byte {i}"));
            }
        };
        out.push(tok);
        i += len;
    }
    if out.is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(out)
}

struct Parser<'t, 'f> {
    tokens: &'t [Tok],
    at: usize,
    funcs: &'f [Func],
    depth: usize,
}

/// Deepest nesting of parentheses accepted (the parser recurses once per level).
const MAX_DEPTH: usize = 32;

impl Parser<'_, '_> {
    fn next(&mut self) -> Option<&Tok> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut all = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::Or(all)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut all = vec![self.atom()?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            all.push(self.atom()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn atom(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("parentheses nested deeper than {MAX_DEPTH}"));
            }
            let e = self.or()?;
            self.depth -= 1;
            return match self.next() {
                Some(Tok::Close) => Ok(e),
                _ => Err("missing )".into()),
            };
        }
        let (call, ret) = self.call()?;
        let Some(Tok::Op(op)) = self.peek().cloned() else {
            return match ret {
                Ret::Bool => Ok(Expr::Test(call)),
                _ => Err(format!(
                    "{}() must be compared with a value",
                    self.funcs[call.func].name
                )),
            };
        };
        self.at += 1;
        let name = self.funcs[call.func].name;
        let lit = match (self.next(), ret) {
            (Some(Tok::Num(n)), Ret::Num) => Lit::Num(*n),
            (Some(Tok::Str(s)), Ret::Str) if matches!(op, Op::Eq | Op::Ne) => {
                Lit::Str(s.as_str().into())
            }
            (other, _) => {
                return Err(format!(
                    "{name}() cannot be compared with {other:?} that way"
                ));
            }
        };
        Ok(Expr::Cmp(call, op, lit))
    }

    fn call(&mut self) -> Result<(Call, Ret), String> {
        let name = match self.next() {
            Some(Tok::Ident(n)) => n.clone(),
            other => return Err(format!("expected a function call, found {other:?}")),
        };
        let known: Vec<&str> = self.funcs.iter().map(|f| f.name).collect();
        let Some(func) = self.funcs.iter().position(|f| f.name == name) else {
            return Err(format!(
                "unknown function {name} (known: {})",
                known.join(", ")
            ));
        };
        if self.next() != Some(&Tok::Open) {
            return Err(format!("{name} must be called: {name}(...)"));
        }
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::Close) {
            self.at += 1;
        } else {
            loop {
                match self.next() {
                    Some(Tok::Num(n)) => args.push(*n),
                    other => return Err(format!("{name}: expected a number, found {other:?}")),
                }
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::Close) => break,
                    other => return Err(format!("{name}: expected , or ), found {other:?}")),
                }
            }
        }
        let f = &self.funcs[func];
        if args.len() != f.arity {
            return Err(format!(
                "{name} takes {} argument(s), {} given",
                f.arity,
                args.len()
            ));
        }
        Ok((Call { func, args }, f.ret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUNCS: &[Func] = &[
        Func {
            name: "Ratio",
            arity: 0,
            ret: Ret::Num,
        },
        Func {
            name: "Codes",
            arity: 4,
            ret: Ret::Num,
        },
        Func {
            name: "Method",
            arity: 0,
            ret: Ret::Str,
        },
        Func {
            name: "Failed",
            arity: 0,
            ret: Ret::Bool,
        },
    ];

    fn eval(text: &str, ratio: f64, failed: bool) -> bool {
        let e = Expr::parse(text, FUNCS).unwrap();
        e.eval(&|c: &Call| match c.func {
            0 => Value::Num(ratio),
            1 => Value::Num(c.args.iter().sum()),
            2 => Value::Str("GET"),
            _ => Value::Bool(failed),
        })
    }

    #[test]
    fn comparisons_and_precedence() {
        assert!(eval("Ratio() > 0.30", 0.5, false));
        assert!(!eval("Ratio() > 0.30", 0.3, false));
        assert!(eval("Ratio() >= 0.30", 0.3, false));
        assert!(eval("Codes(500, 600, 0, 600) == 1700", 0.0, false));
        assert!(eval(r#"Method() == "GET""#, 0.0, false));
        assert!(eval("Method() != `POST`", 0.0, false));
        // && binds tighter than ||.
        assert!(eval("Failed() || Ratio() > 1 && Ratio() < 0", 0.0, true));
        assert!(!eval("(Failed() || Ratio() > 1) && Ratio() < 0", 0.0, true));
        assert!(eval("Failed() && Ratio() < 2", 1.0, true));
        let nested = format!("{}Failed(){}", "(".repeat(32), ")".repeat(32));
        assert!(eval(&nested, 0.0, true));
    }

    #[test]
    fn mistakes_are_configuration_errors() {
        let deep = format!("{}Failed(){}", "(".repeat(100_000), ")".repeat(100_000));
        for bad in [
            "",
            "Ratio > 1",
            "Ratio()",
            "Nope() > 1",
            "Codes(1, 2) > 0",
            "Ratio() > \"x\"",
            "Method() > \"GET\"",
            "Method() == 1",
            "Failed() &&",
            "(Failed()",
            "Failed() Failed()",
            "Ratio() > 1 ; rm",
            "Ratio() > 1.2.3",
            &deep,
        ] {
            assert!(Expr::parse(bad, FUNCS).is_err(), "{bad:?} was accepted");
        }
    }
}
