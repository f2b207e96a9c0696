//! The deserializer that walks toml's spanned tree for `nocase`: one [`ValueDe`] per value, a
//! map access per table (struct mode: keys matched to schema fields ignoring case, unknown keys
//! recorded, spellings merged; map mode: keys as written) and a sequence access per array.
//!
//! Errors it creates carry the span and canonical path of their value; it records, it never
//! reports, and it never panics on input.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Expected, IntoDeserializer, Unexpected, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Ctx, DeError};
use crate::config::error::Span;
use crate::config::spans::child_path;

fn unexpected<'a>(value: &'a DeValue<'_>) -> Unexpected<'a> {
    match value {
        DeValue::String(s) => Unexpected::Str(s),
        DeValue::Integer(_) => Unexpected::Other("integer"),
        DeValue::Float(_) => Unexpected::Other("float"),
        DeValue::Boolean(b) => Unexpected::Bool(*b),
        DeValue::Datetime(_) => Unexpected::Other("datetime"),
        DeValue::Array(_) => Unexpected::Other("array"),
        DeValue::Table(_) => Unexpected::Other("table"),
    }
}

/// Go's `strconv.ParseBool`, which Traefik applies to every boolean it reads.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One value of the tree, with its span and canonical path.
pub(super) struct ValueDe<'c, 'de> {
    value: DeValue<'de>,
    span: Span,
    path: String,
    ctx: &'c Ctx,
}

impl<'c, 'de> ValueDe<'c, 'de> {
    /// The document itself.
    pub(super) fn root(table: DeTable<'de>, span: Span, ctx: &'c Ctx) -> Self {
        Self {
            value: DeValue::Table(table),
            span,
            path: String::new(),
            ctx,
        }
    }

    /// toml's own deserializer for this value: used for numbers and datetimes, whose decoding
    /// (radix, overflow, datetime magic) toml already does right.
    fn toml(self) -> toml::de::ValueDeserializer<'de> {
        Spanned::new(self.span, self.value).into()
    }

    fn invalid_type(&self, exp: &dyn Expected) -> DeError {
        <DeError as de::Error>::invalid_type(unexpected(&self.value), exp)
            .at(&self.span, &self.path)
    }
}

/// Prepares a table for visiting, in file order. In struct mode (`fields` set, `name` being the
/// struct's name) each key is matched to its schema field ignoring ASCII case; unknown keys are
/// recorded and skipped, and tables given under several spellings (`[entryPoints.a]`,
/// `[EntryPoints.b]`) are merged.
fn table_access<'c, 'de>(
    table: DeTable<'de>,
    fields: Option<&'static [&'static str]>,
    name: &'static str,
    path: String,
    ctx: &'c Ctx,
) -> TableAccess<'c, 'de> {
    let mut raw: Vec<_> = table.into_iter().collect();
    raw.sort_by_key(|(k, _)| k.span().start);
    let mut entries: Vec<Entry<'de>> = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let key_span = key.span();
        let key = key.into_inner();
        let Some(fields) = fields else {
            entries.push(Entry {
                name: key,
                key: key_span,
                value,
            });
            continue;
        };
        let Some(&canonical) = fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) else {
            ctx.problem(key_span, ctx.unknown_key(&key, name, fields));
            continue;
        };
        match entries.iter_mut().find(|e| e.name == canonical) {
            None => entries.push(Entry {
                name: Cow::Borrowed(canonical),
                key: key_span,
                value,
            }),
            Some(first) => merge_into(&mut first.value, value, &key, key_span, ctx),
        }
    }
    TableAccess {
        entries: entries.into_iter(),
        pending: None,
        path,
        ctx,
    }
}

/// Merges a second spelling of a key into the first: tables merge key by key (exact keys below
/// this level), anything else is a duplicate.
fn merge_into<'de>(
    first: &mut Spanned<DeValue<'de>>,
    second: Spanned<DeValue<'de>>,
    key: &str,
    key_span: Span,
    ctx: &Ctx,
) {
    match (first.get_mut(), second.into_inner()) {
        (DeValue::Table(into), DeValue::Table(from)) => {
            for (k, v) in from {
                match into.get_mut(k.get_ref().as_ref()) {
                    None => {
                        into.insert(k, v);
                    }
                    Some(existing) => {
                        let span = k.span();
                        merge_into(existing, v, k.get_ref(), span, ctx);
                    }
                }
            }
        }
        _ => {
            let message = format!("duplicate key `{key}`: keys ignore case and it is already set");
            ctx.problem(key_span, message);
        }
    }
}

/// One key to visit: its schema name (struct mode) or name as written (map mode), where the key
/// was, and its value.
struct Entry<'de> {
    name: Cow<'de, str>,
    key: Span,
    value: Spanned<DeValue<'de>>,
}

fn array_access<'c, 'de>(
    items: Vec<Spanned<DeValue<'de>>>,
    path: String,
    ctx: &'c Ctx,
) -> ArrayAccess<'c, 'de> {
    ArrayAccess {
        items: items.into_iter(),
        index: 0,
        path,
        ctx,
    }
}

macro_rules! lenient_int {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            if let DeValue::String(s) = &self.value {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    return visitor.visit_i64(i);
                }
                if let Ok(u) = t.parse::<u64>() {
                    return visitor.visit_u64(u);
                }
                return Err(self.invalid_type(&visitor));
            }
            match self.value {
                DeValue::Integer(_) | DeValue::Float(_) => self.deserialize_any(visitor),
                _ => Err(self.invalid_type(&visitor)),
            }
        }
    )*};
}

macro_rules! lenient_float {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            if let DeValue::String(s) = &self.value {
                return match s.trim().parse::<f64>() {
                    Ok(f) => visitor.visit_f64(f),
                    Err(_) => Err(self.invalid_type(&visitor)),
                };
            }
            match self.value {
                DeValue::Integer(_) | DeValue::Float(_) => self.deserialize_any(visitor),
                _ => Err(self.invalid_type(&visitor)),
            }
        }
    )*};
}

macro_rules! lenient_string {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.value {
                DeValue::Integer(i) => visitor.visit_string(i.to_string()),
                DeValue::Float(f) => visitor.visit_string(f.as_str().to_owned()),
                DeValue::Boolean(b) => visitor.visit_string(b.to_string()),
                DeValue::Datetime(d) => visitor.visit_string(d.to_string()),
                DeValue::Array(_) | DeValue::Table(_) => Err(self.invalid_type(&visitor)),
                DeValue::String(_) => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDe<'_, 'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::String(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            DeValue::String(Cow::Owned(s)) => visitor.visit_string(s),
            DeValue::Boolean(b) => visitor.visit_bool(b),
            DeValue::Array(items) => visitor.visit_seq(array_access(
                items.into_iter().collect(),
                self.path,
                self.ctx,
            )),
            DeValue::Table(t) => visitor.visit_map(table_access(t, None, "", self.path, self.ctx)),
            value @ (DeValue::Integer(_) | DeValue::Float(_) | DeValue::Datetime(_)) => {
                let de = toml::de::ValueDeserializer::from(Spanned::new(self.span, value));
                de.deserialize_any(visitor).map_err(DeError::from)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // toml's private protocols (`Spanned<T>`, datetimes) are left to toml itself.
        if name.starts_with("$__") {
            return (self.toml().deserialize_struct(name, fields, visitor)).map_err(DeError::from);
        }
        let table = match self.value {
            DeValue::Table(t) => t,
            // Traefik's "allowEmpty": `tls = true` enables a section with its defaults.
            DeValue::Boolean(true) => DeTable::new(),
            _ => return Err(self.invalid_type(&visitor)),
        };
        visitor.visit_map(table_access(table, Some(fields), name, self.path, self.ctx))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::Table(t) => visitor.visit_map(table_access(t, None, "", self.path, self.ctx)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::Array(items) => visitor.visit_seq(array_access(
                items.into_iter().collect(),
                self.path,
                self.ctx,
            )),
            // Traefik reads `entryPoints = "web,websecure"` as a list.
            DeValue::String(s) => {
                let items = s
                    .split(',')
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                    .map(|part| {
                        let value = DeValue::String(Cow::Owned(part.to_owned()));
                        Spanned::new(self.span.clone(), value)
                    })
                    .collect();
                visitor.visit_seq(array_access(items, self.path, self.ctx))
            }
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::String(s) => match variants.iter().find(|v| v.eq_ignore_ascii_case(&s)) {
                Some(&canonical) => {
                    visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(canonical))
                }
                None => visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(
                    s.into_owned(),
                )),
            },
            DeValue::Table(_) => {
                (self.toml().deserialize_enum(name, variants, visitor)).map_err(DeError::from)
            }
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let DeValue::String(s) = &self.value {
            return match go_bool(s.trim()) {
                Some(b) => visitor.visit_bool(b),
                None => Err(self.invalid_type(&visitor)),
            };
        }
        match self.value {
            DeValue::Boolean(b) => visitor.visit_bool(b),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    lenient_int! { deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
    deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 }
    lenient_float! { deserialize_f32 deserialize_f64 }
    lenient_string! { deserialize_str deserialize_string deserialize_char }

    serde::forward_to_deserialize_any! {
        unit unit_struct bytes byte_buf identifier ignored_any i128 u128
    }
}

/// The prepared entries of one table (see [`table_access`]).
struct TableAccess<'c, 'de> {
    entries: std::vec::IntoIter<Entry<'de>>,
    pending: Option<(Spanned<DeValue<'de>>, Span, String)>,
    path: String,
    ctx: &'c Ctx,
}

impl<'de> de::MapAccess<'de> for TableAccess<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(Entry { name, key, value }) = self.entries.next() else {
            return Ok(None);
        };
        let path = child_path(&self.path, &name);
        self.ctx.record(&path, key.clone(), value.span());
        let key_de = ValueDe {
            value: DeValue::String(name),
            span: key.clone(),
            path: path.clone(),
            ctx: self.ctx,
        };
        let key_value = seed.deserialize(key_de).map_err(|e| e.at(&key, &path))?;
        self.pending = Some((value, key, path));
        Ok(Some(key_value))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((value, key_span, path)) = self.pending.take() else {
            return Err(de::Error::custom(
                "internal: value requested before its key",
            ));
        };
        let span = value.span();
        // A table's own span may be a whole `[header]`; its key is the clearer place to point.
        let anchor = match value.get_ref() {
            DeValue::Table(_) => key_span,
            _ => span.clone(),
        };
        let de = ValueDe {
            value: value.into_inner(),
            span,
            path: path.clone(),
            ctx: self.ctx,
        };
        seed.deserialize(de).map_err(|e| e.at(&anchor, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The items of one array, each with its span; item paths are their indexes.
struct ArrayAccess<'c, 'de> {
    items: std::vec::IntoIter<Spanned<DeValue<'de>>>,
    index: usize,
    path: String,
    ctx: &'c Ctx,
}

impl<'de> de::SeqAccess<'de> for ArrayAccess<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let span = item.span();
        let path = child_path(&self.path, &self.index.to_string());
        self.index += 1;
        self.ctx.record(&path, span.clone(), span.clone());
        let de = ValueDe {
            value: item.into_inner(),
            span: span.clone(),
            path: path.clone(),
            ctx: self.ctx,
        };
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(&span, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}
