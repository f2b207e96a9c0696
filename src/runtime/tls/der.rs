//! Just enough DER to read what boma shows and indexes of an X.509 certificate: the names it is
//! for (subject alternative names, or the subject's common name when it has none), its subject
//! and issuer common names, its validity and, for a CA, the DNS names its name constraints
//! permit. Anything unexpected reads as `None`; the handshake itself is rustls's business.

use std::net::IpAddr;

use crate::linelog::days_from_civil;

/// What a certificate says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// DNS names (lower case, `*.` wildcards kept) it is valid for.
    pub names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names of the name constraints' permitted subtrees (lower case); empty when the
    /// certificate has none.
    pub permitted: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTETS: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` version, `[3]` extensions (explicit, constructed).
const CTX0: u8 = 0xa0;
const CTX3: u8 = 0xa3;
/// GeneralName `[2] dNSName` and `[7] iPAddress` (implicit, primitive).
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_NAME_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x1e];
/// `permittedSubtrees [0]` of NameConstraints (implicit, constructed).
const PERMITTED: u8 = 0xa0;

/// One TLV: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The contents of a TLV that must have tag `want`.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = tlv(input)?;
    (tag == want).then_some((body, rest))
}

/// Reads the certificate `der`.
pub fn facts(der: &[u8]) -> Option<Facts> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((CTX0, _, after)) = tlv(rest) {
        rest = after;
    }
    let (_serial, rest) = tlv(rest).map(|(_, b, r)| (b, r))?;
    let (_sig_alg, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, mut rest) = expect(rest, SEQUENCE)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    let mut facts = Facts {
        subject: common_name(subject),
        issuer: common_name(issuer),
        not_before,
        not_after,
        ..Facts::default()
    };
    // subjectPublicKeyInfo, the optional unique IDs, then [3] extensions.
    while let Some((tag, body, after)) = tlv(rest) {
        if tag == CTX3 {
            extensions(body, &mut facts);
        }
        rest = after;
    }
    if facts.names.is_empty()
        && facts.ips.is_empty()
        && let Some(cn) = &facts.subject
        && crate::config::is_domain_name(cn.trim_start_matches("*."))
    {
        facts.names.push(cn.to_ascii_lowercase());
    }
    Some(facts)
}

/// The first common name of a distinguished name.
fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = name;
    while let Some((set, after)) = expect(rdns, SET) {
        let mut attrs = set;
        while let Some((attr, next)) = expect(attrs, SEQUENCE) {
            let (oid, value) = expect(attr, OID)?;
            if oid == OID_CN {
                let (_, text, _) = tlv(value)?;
                return Some(String::from_utf8_lossy(text).into_owned());
            }
            attrs = next;
        }
        rdns = after;
    }
    None
}

/// The subject alternative names and name constraints of the extensions `[3]` wrapper `ext`.
fn extensions(ext: &[u8], facts: &mut Facts) -> Option<()> {
    let (mut list, _) = expect(ext, SEQUENCE)?;
    while let Some((one, next)) = expect(list, SEQUENCE) {
        list = next;
        let (oid, mut rest) = expect(one, OID)?;
        if let Some((BOOLEAN, _, after)) = tlv(rest) {
            rest = after; // critical
        }
        // One malformed extension does not hide the others.
        let Some((value, _)) = expect(rest, OCTETS) else {
            continue;
        };
        if oid == OID_SAN {
            alt_names(value, facts);
        } else if oid == OID_NAME_CONSTRAINTS {
            permitted(value, facts);
        }
    }
    Some(())
}

/// GeneralNames: the DNS names and IP addresses.
fn alt_names(value: &[u8], facts: &mut Facts) -> Option<()> {
    let (mut names, _) = expect(value, SEQUENCE)?;
    while let Some((tag, body, after)) = tlv(names) {
        match tag {
            DNS_NAME => facts
                .names
                .push(String::from_utf8_lossy(body).to_ascii_lowercase()),
            IP_ADDRESS => {
                if let Ok(v4) = <[u8; 4]>::try_from(body) {
                    facts.ips.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(body) {
                    facts.ips.push(IpAddr::from(v6));
                }
            }
            _ => {}
        }
        names = after;
    }
    Some(())
}

/// NameConstraints: the DNS names of the permitted subtrees.
fn permitted(value: &[u8], facts: &mut Facts) -> Option<()> {
    let (constraints, _) = expect(value, SEQUENCE)?;
    let (mut subtrees, _) = expect(constraints, PERMITTED)?;
    while let Some((subtree, after)) = expect(subtrees, SEQUENCE) {
        if let Some((DNS_NAME, base, _)) = tlv(subtree) {
            (facts.permitted).push(String::from_utf8_lossy(base).to_ascii_lowercase());
        }
        subtrees = after;
    }
    Some(())
}

/// A UTCTime or GeneralizedTime (`Z` only, as RFC 5280 requires) as Unix seconds.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, body, rest) = tlv(input)?;
    let text = std::str::from_utf8(body).ok()?.strip_suffix('Z')?;
    // Digits only: the slicing below is by byte, and `parse` would take a sign.
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest_digits) = match tag {
        UTC_TIME if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest_digits.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (h, m, s) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some((
        days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s,
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 28), 20_785);
    }

    #[test]
    fn reads_a_generated_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["a.example.org".into(), "*.w.example.org".into()])
                .unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress(
            std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Leaf One");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2027, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let f = facts(cert.der()).expect("parsed");
        assert_eq!(f.names, ["a.example.org", "*.w.example.org"]);
        assert_eq!(f.ips, [IpAddr::from([10, 0, 0, 1])]);
        assert_eq!(f.subject.as_deref(), Some("Leaf One"));
        assert_eq!(f.issuer.as_deref(), Some("Leaf One"));
        assert_eq!(f.not_before, days_from_civil(2026, 1, 2) * 86_400);
        assert_eq!(f.not_after, days_from_civil(2027, 3, 4) * 86_400);
        assert!(f.permitted.is_empty());
    }

    #[test]
    fn reads_a_cas_permitted_names() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![
                rcgen::GeneralSubtree::DnsName("Village.lan".into()),
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V4(
                    [10, 0, 0, 0],
                    [255, 0, 0, 0],
                )),
                rcgen::GeneralSubtree::DnsName("school.lan".into()),
            ],
            excluded_subtrees: vec![rcgen::GeneralSubtree::DnsName("x.school.lan".into())],
        });
        let key = rcgen::KeyPair::generate().unwrap();
        let f = facts(params.self_signed(&key).unwrap().der()).expect("parsed");
        assert_eq!(f.permitted, ["village.lan", "school.lan"]);
    }

    #[test]
    fn common_name_stands_in_for_missing_alt_names_and_garbage_is_none() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Old.Example.org");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        assert_eq!(facts(&der).unwrap().names, ["old.example.org"]);
        for cut in [0, 1, 10, der.len() / 2] {
            assert_eq!(facts(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(facts(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        // A time with a multi-byte character where digits belong, or a sign: no panic, no time.
        for bad in ["1\u{e9}000000000Z", "+10101000000Z", "-1010100000Z"] {
            let mut t = vec![UTC_TIME, bad.len() as u8];
            t.extend_from_slice(bad.as_bytes());
            assert_eq!(time(&t), None, "{bad}");
        }
    }
}
