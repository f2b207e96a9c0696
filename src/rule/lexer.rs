//! Tokens of the rule language, with the byte offset of each. Traefik hands rules to Go's
//! expression parser, so strings are Go string literals: raw strings in backticks (no escapes,
//! carriage returns dropped) or interpreted strings in double quotes with Go's escapes (`\n`,
//! `\"`, `\\`, `\x41`, `\101`, `\u00e9`, `\U0001F600`, ...). Single quotes are Go rune literals
//! and are refused, as Traefik refuses them.
//!
//! The lexer only cuts text into tokens; it knows no matcher names and no grammar.

use super::RuleError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::LParen => "`(`".to_owned(),
            Tok::RParen => "`)`".to_owned(),
            Tok::Comma => "`,`".to_owned(),
            Tok::And => "`&&`".to_owned(),
            Tok::Or => "`||`".to_owned(),
            Tok::Not => "`!`".to_owned(),
            Tok::Eof => "the end of the rule".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the token's first character.
    pub(crate) offset: usize,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> RuleError {
        RuleError::at(self.src, offset, msg)
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, RuleError> {
        let bytes = self.src.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                tok: Tok::Eof,
                offset: start,
            });
        };
        let tok = match c {
            '(' => self.one(Tok::LParen),
            ')' => self.one(Tok::RParen),
            ',' => self.one(Tok::Comma),
            '!' => self.one(Tok::Not),
            '&' | '|' => {
                if bytes.get(start + 1) == Some(&(c as u8)) {
                    self.pos += 2;
                    if c == '&' { Tok::And } else { Tok::Or }
                } else {
                    return Err(self.err(start, format!("expected `{c}{c}`, found a single `{c}`")));
                }
            }
            '`' => self.raw_string()?,
            '"' => self.interpreted_string()?,
            '\'' => {
                return Err(self.err(
                    start,
                    "single quotes are not allowed; put the value in backticks or double quotes",
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let len: usize = self.src[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .map(char::len_utf8)
                    .sum();
                self.pos += len;
                Tok::Ident(self.src[start..self.pos].to_owned())
            }
            c if c.is_ascii_digit() => {
                return Err(self.err(
                    start,
                    "expected a string in backticks or double quotes, found a number",
                ));
            }
            '\0' => return Err(self.err(start, "NUL character in rule")),
            c => return Err(self.err(start, format!("unexpected character `{c}`"))),
        };
        Ok(Token { tok, offset: start })
    }

    fn one(&mut self, tok: Tok) -> Tok {
        self.pos += 1;
        tok
    }

    fn raw_string(&mut self) -> Result<Tok, RuleError> {
        let start = self.pos;
        let body_start = start + 1;
        let Some(len) = self.src[body_start..].find('`') else {
            return Err(self.err(start, "unterminated string: missing closing backtick"));
        };
        let body = &self.src[body_start..body_start + len];
        if let Some(nul) = body.find('\0') {
            return Err(self.err(body_start + nul, "NUL character in rule"));
        }
        self.pos = body_start + len + 1;
        Ok(Tok::Str(body.replace('\r', "")))
    }

    fn interpreted_string(&mut self) -> Result<Tok, RuleError> {
        let start = self.pos;
        let mut out: Vec<u8> = Vec::new();
        let mut i = start + 1;
        let bytes = self.src.as_bytes();
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(self.err(start, "unterminated string: missing closing `\"`"));
            };
            match b {
                b'"' => break,
                b'\n' => {
                    return Err(self.err(start, "unterminated string: newline before closing `\"`"));
                }
                b'\0' => return Err(self.err(i, "NUL character in rule")),
                b'\\' => i = self.escape(i, &mut out)?,
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        match String::from_utf8(out) {
            Ok(s) => Ok(Tok::Str(s)),
            Err(_) => Err(self.err(
                start,
                "string is not valid UTF-8 once its escapes are decoded",
            )),
        }
    }

    /// Decode one Go escape starting at the backslash at `at`; returns the offset after it.
    fn escape(&self, at: usize, out: &mut Vec<u8>) -> Result<usize, RuleError> {
        let bytes = self.src.as_bytes();
        let bad = |msg: &str| self.err(at, msg.to_owned());
        let Some(&c) = bytes.get(at + 1) else {
            return Err(self.err(at, "unterminated string: missing closing `\"`"));
        };
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            return Ok(at + 2);
        }
        let digits = |n: usize, radix: u32| -> Option<u32> {
            let s = self.src.get(at + 2..at + 2 + n)?;
            if !s.bytes().all(|b| (b as char).is_digit(radix)) {
                return None;
            }
            u32::from_str_radix(s, radix).ok()
        };
        match c {
            b'x' => {
                let v =
                    digits(2, 16).ok_or_else(|| bad("`\\x` must be followed by 2 hex digits"))?;
                out.push(v as u8);
                Ok(at + 4)
            }
            b'0'..=b'7' => {
                let s = self.src.get(at + 1..at + 4).unwrap_or("");
                let v = (s.len() == 3 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                    .then(|| u32::from_str_radix(s, 8).ok())
                    .flatten()
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| bad("octal escape must be 3 digits with a value up to \\377"))?;
                out.push(v as u8);
                Ok(at + 4)
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let ch = digits(n, 16)
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad("invalid Unicode escape"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                Ok(at + 2 + n)
            }
            _ => {
                let shown = self.src[at + 1..].chars().next().unwrap_or(' ');
                Err(self.err(
                    at,
                    format!("unknown escape `\\{shown}` in double-quoted string (use backticks for regexps)"),
                ))
            }
        }
    }
}
