//! Client IP selection and the `ipAllowList` (alias `ipWhiteList`) middleware.
//!
//! `ipStrategy` picks the address a request is judged by, as Traefik does: the peer address by
//! default (masked to `ipv6Subnet` if set), the `depth`-th `X-Forwarded-For` entry from the right,
//! or the rightmost entry not in `excludedIPs`. The same selection (plus `requestHeaderName` and
//! `requestHost`) is the source key of `rateLimit` and `inFlightReq`. IPv4-mapped IPv6 addresses
//! count as their IPv4 form, as Go's `net.IPNet` does. CIDRs are parsed at compile time;
//! nothing here allocates per request except the list of `X-Forwarded-For` entries.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderName;
use http::StatusCode;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::util;
use super::{Ctx, Flow, MiddlewareError};
use crate::ipnet::IpSet;

/// `ipStrategy`: `depth` > 0 wins over `excludedIPs`; `ipv6Subnet` (1..=128) groups IPv6
/// clients by prefix for the peer-address and depth strategies.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpStrategyConfig {
    #[serde(default, deserialize_with = "util::int")]
    pub depth: i64,
    #[serde(default, rename = "excludedIPs", deserialize_with = "util::str_list")]
    pub excluded_ips: Vec<String>,
    #[serde(default, rename = "ipv6Subnet", deserialize_with = "util::opt_int")]
    pub ipv6_subnet: Option<i64>,
}

/// `ipAllowList`: requests whose selected IP is outside `sourceRange` get `rejectStatusCode`
/// (default 403) and the status text as body.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpAllowListConfig {
    #[serde(default, deserialize_with = "util::str_list")]
    pub source_range: Vec<String>,
    #[serde(default, deserialize_with = "allow_empty")]
    pub ip_strategy: Option<IpStrategyConfig>,
    #[serde(default, deserialize_with = "util::int")]
    pub reject_status_code: i64,
}

/// `sourceCriterion` of `rateLimit`/`inFlightReq`: at most one of the three may be set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceCriterionConfig {
    #[serde(default, deserialize_with = "allow_empty")]
    pub ip_strategy: Option<IpStrategyConfig>,
    #[serde(default)]
    pub request_header_name: String,
    #[serde(default, deserialize_with = "util::boolean")]
    pub request_host: bool,
}

/// Traefik's `allowEmpty`: a label like `ipstrategy=` (empty string) means the default table.
fn allow_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpStrategyConfig>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<IpStrategyConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an ipStrategy table (or an empty value)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() || v.eq_ignore_ascii_case("true") {
                Ok(Some(IpStrategyConfig::default()))
            } else {
                Err(E::custom(format!("invalid ipStrategy {v:?}")))
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(IpStrategyConfig::default()))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IpStrategyConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

/// An IPv4-mapped IPv6 address as IPv4, anything else unchanged.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses an address as Go's `netip.ParseAddr` (an IPv6 zone is accepted and dropped).
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = if s.contains(':') {
        s.split('%').next().unwrap_or(s)
    } else {
        s
    };
    s.parse().ok()
}

/// The host part of `host:port` / `[v6]:port`, or the whole string (Go's `SplitHostPort`).
fn host_only(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']')
            && p.starts_with(':')
        {
            return h;
        }
        return s;
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => h,
        _ => s,
    }
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    };
    Ipv6Addr::from(bits & mask)
}

/// A set of IPs and CIDRs (Traefik's `ip.Checker`).
pub(crate) struct Checker {
    nets: IpSet,
}

impl Checker {
    pub(crate) fn new(kind: &'static str, list: &[String]) -> Result<Self, MiddlewareError> {
        let nets = IpSet::parse(list).map_err(|e| MiddlewareError::Cidr {
            kind,
            value: e.value,
        })?;
        Ok(Checker { nets })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.nets.contains(ip)
    }

    fn contains_str(&self, s: &str) -> bool {
        parse_ip(s).is_some_and(|ip| self.contains(ip))
    }
}

/// The address a request is judged by: parsed, or the raw text when it does not parse.
pub(crate) enum Picked<'a> {
    Ip(IpAddr),
    Raw(&'a str),
}

/// A compiled `ipStrategy`.
pub(crate) enum Strategy {
    Remote { subnet: Option<u8> },
    Depth { depth: usize, subnet: Option<u8> },
    Pool(Checker),
}

fn subnet(kind: &'static str, v: Option<i64>) -> Result<Option<u8>, MiddlewareError> {
    match v {
        None => Ok(None),
        Some(n @ 1..=128) => Ok(Some(n as u8)),
        Some(n) => Err(MiddlewareError::invalid(
            kind,
            format!(
                "invalid IPv6 subnet {n} value, should be greater to 0 and lower or equal to 128"
            ),
        )),
    }
}

fn masked(ip: IpAddr, subnet: Option<u8>) -> IpAddr {
    match (ip, subnet) {
        (IpAddr::V6(v6), Some(p)) => IpAddr::V6(mask_v6(v6, p)),
        _ => ip,
    }
}

impl Strategy {
    pub(crate) fn compile(
        kind: &'static str,
        c: Option<&IpStrategyConfig>,
    ) -> Result<Self, MiddlewareError> {
        let Some(c) = c else {
            return Ok(Strategy::Remote { subnet: None });
        };
        if c.depth > 0 {
            let depth = usize::try_from(c.depth).unwrap_or(usize::MAX);
            return Ok(Strategy::Depth {
                depth,
                subnet: subnet(kind, c.ipv6_subnet)?,
            });
        }
        if !c.excluded_ips.is_empty() {
            return Ok(Strategy::Pool(Checker::new(kind, &c.excluded_ips)?));
        }
        Ok(Strategy::Remote {
            subnet: subnet(kind, c.ipv6_subnet)?,
        })
    }

    pub(crate) fn pick<'a>(&self, req: &'a http::request::Parts, ctx: &Ctx) -> Picked<'a> {
        match self {
            Strategy::Remote { subnet } => Picked::Ip(masked(ctx.client_ip, *subnet)),
            Strategy::Depth { depth, subnet } => {
                let entries = forwarded_for(req);
                if entries.len() < *depth {
                    return Picked::Raw("");
                }
                let s = entries[entries.len() - depth];
                match parse_ip(s) {
                    Some(ip) => Picked::Ip(masked(ip, *subnet)),
                    None => Picked::Raw(s),
                }
            }
            Strategy::Pool(excluded) => {
                for s in forwarded_for(req).into_iter().rev() {
                    if s.is_empty() {
                        continue;
                    }
                    if !excluded.contains_str(s) {
                        return parse_ip(s).map_or(Picked::Raw(s), Picked::Ip);
                    }
                }
                Picked::Raw("")
            }
        }
    }
}

/// `X-Forwarded-For` entries, left to right, trimmed (all header lines joined, like a
/// comma-joined single header).
fn forwarded_for(req: &http::request::Parts) -> Vec<&str> {
    let mut out = Vec::new();
    let mut any = false;
    for v in req.headers.get_all("x-forwarded-for") {
        any = true;
        out.extend(v.to_str().unwrap_or("").split(',').map(str::trim));
    }
    if !any {
        out.push("");
    }
    out
}

pub(crate) struct IpAllowList {
    checker: Checker,
    strategy: Strategy,
    reject: StatusCode,
}

impl IpAllowList {
    pub(crate) fn compile(c: &IpAllowListConfig) -> Result<Self, MiddlewareError> {
        const KIND: &str = "ipAllowList";
        if c.source_range.is_empty() {
            return Err(MiddlewareError::invalid(KIND, "sourceRange is empty"));
        }
        let reject = if c.reject_status_code == 0 {
            StatusCode::FORBIDDEN
        } else {
            u16::try_from(c.reject_status_code)
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
                .filter(|s| s.canonical_reason().is_some())
                .ok_or_else(|| {
                    MiddlewareError::invalid(
                        KIND,
                        format!("invalid HTTP status code {}", c.reject_status_code),
                    )
                })?
        };
        Ok(IpAllowList {
            checker: Checker::new(KIND, &c.source_range)?,
            strategy: Strategy::compile(KIND, c.ip_strategy.as_ref())?,
            reject,
        })
    }

    pub(crate) fn on_request(&self, req: &mut http::request::Parts, ctx: &mut Ctx) -> Flow {
        let allowed = match self.strategy.pick(req, ctx) {
            Picked::Ip(ip) => self.checker.contains(ip),
            Picked::Raw(s) => {
                let host = host_only(s);
                !host.is_empty() && self.checker.contains_str(host)
            }
        };
        if allowed {
            Flow::Continue
        } else {
            Flow::Respond(util::text_response(
                self.reject,
                util::status_text(self.reject),
            ))
        }
    }
}

/// What a limiter counts requests by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    Ip(IpAddr),
    Text(Box<str>),
}

/// A compiled `sourceCriterion`.
pub(crate) enum Source {
    Ip(Strategy),
    Header(HeaderName),
    Host,
}

impl Source {
    /// `default_host`: inFlightReq defaults to the request host, rateLimit to the peer IP.
    pub(crate) fn compile(
        kind: &'static str,
        c: Option<&SourceCriterionConfig>,
        default_host: bool,
    ) -> Result<Self, MiddlewareError> {
        let Some(c) = c else {
            return Ok(if default_host {
                Source::Host
            } else {
                Source::Ip(Strategy::Remote { subnet: None })
            });
        };
        let header = !c.request_header_name.is_empty();
        let exclusive = |a: &str, b: &str| {
            MiddlewareError::invalid(kind, format!("{a} and {b} are mutually exclusive"))
        };
        if c.ip_strategy.is_some() && header {
            return Err(exclusive("IPStrategy", "RequestHeaderName"));
        }
        if c.ip_strategy.is_some() && c.request_host {
            return Err(exclusive("IPStrategy", "RequestHost"));
        }
        if header && c.request_host {
            return Err(exclusive("RequestHost", "RequestHeaderName"));
        }
        if let Some(s) = &c.ip_strategy {
            return Ok(Source::Ip(Strategy::compile(kind, Some(s))?));
        }
        if header {
            let name = HeaderName::from_bytes(c.request_header_name.as_bytes()).map_err(|_| {
                MiddlewareError::invalid(
                    kind,
                    format!("invalid requestHeaderName {:?}", c.request_header_name),
                )
            })?;
            return Ok(Source::Header(name));
        }
        if c.request_host {
            return Ok(Source::Host);
        }
        Ok(if default_host {
            Source::Host
        } else {
            Source::Ip(Strategy::Remote { subnet: None })
        })
    }

    pub(crate) fn key(&self, req: &http::request::Parts, ctx: &Ctx) -> SourceKey {
        match self {
            Source::Ip(s) => match s.pick(req, ctx) {
                Picked::Ip(ip) => SourceKey::Ip(canonical(ip)),
                Picked::Raw(s) => SourceKey::Text(s.into()),
            },
            Source::Header(n) => {
                let v = req.headers.get(n).map_or(&b""[..], |v| v.as_bytes());
                SourceKey::Text(String::from_utf8_lossy(v).into())
            }
            Source::Host => SourceKey::Text(util::request_host(req).unwrap_or("").into()),
        }
    }
}
