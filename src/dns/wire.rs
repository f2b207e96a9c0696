//! The DNS wire format at boma's edge, on top of hickory-proto: [`parse`] turns a client's packet
//! into a [`Question`] (or says why not), [`encode`] writes a reply that fits the client's
//! transport (512 bytes, or its EDNS size up to ours, on UDP; 65535 on TCP), truncating cleanly:
//! a reply that does not fit is sent with TC and no records, and the client retries over TCP.
//!
//! Pure functions over byte slices; they never panic on input and never allocate more than the
//! reply they build.

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
    emit_message_parts,
};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

/// The EDNS payload size boma advertises and accepts (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Largest packet read from a client or an upstream over UDP.
pub const MAX_UDP: usize = 4096;

/// One client question, as the handler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub id: u16,
    /// The question as asked (its name's case is echoed in answers).
    pub query: Query,
    /// The name in lower case.
    pub lower: Name,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// The client's EDNS payload size, when it sent an OPT record.
    pub edns: Option<u16>,
    /// The packet had a question to echo (false only for a FORMERR reply to one without).
    pub echo: bool,
}

impl Question {
    pub fn qtype(&self) -> RecordType {
        self.query.query_type()
    }
}

/// Why a packet is not a question to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// Not a DNS message, or a response: dropped without a reply (and counted).
    Malformed,
    /// A message to answer with an error code only (unsupported opcode, class or count).
    Error(Box<Question>, ResponseCode),
}

/// Reads a client's packet.
pub fn parse(packet: &[u8]) -> Result<Question, Reject> {
    let msg = Message::from_vec(packet).map_err(|_| Reject::Malformed)?;
    if msg.metadata.message_type != MessageType::Query {
        return Err(Reject::Malformed);
    }
    let query = msg.queries.first().cloned().unwrap_or_default();
    let question = Question {
        id: msg.metadata.id,
        lower: query.name().to_lowercase(),
        query,
        recursion_desired: msg.metadata.recursion_desired,
        checking_disabled: msg.metadata.checking_disabled,
        edns: msg.edns.as_ref().map(|e| e.max_payload().max(512)),
        echo: !msg.queries.is_empty(),
    };
    let error = if msg.metadata.op_code != OpCode::Query {
        Some(ResponseCode::NotImp)
    } else if msg.queries.len() != 1 {
        Some(ResponseCode::FormErr)
    } else if question.query.query_class() != DNSClass::IN {
        Some(ResponseCode::NotImp)
    } else if matches!(
        question.qtype(),
        RecordType::AXFR | RecordType::IXFR | RecordType::OPT
    ) {
        Some(ResponseCode::Refused)
    } else {
        None
    };
    match error {
        Some(code) => Err(Reject::Error(Box::new(question), code)),
        None => Ok(question),
    }
}

/// The transport a reply goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Largest reply to `q` on this transport.
    pub fn limit(self, q: &Question) -> u16 {
        match self {
            Transport::Tcp => u16::MAX,
            Transport::Udp => q.edns.map_or(512, |p| p.clamp(512, EDNS_PAYLOAD)),
        }
    }
}

/// A reply's header and records.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: &'a [Record],
    pub authority: &'a [Record],
}

impl Reply<'_> {
    /// A reply with only a response code.
    pub fn error(rcode: ResponseCode) -> Reply<'static> {
        Reply {
            rcode,
            authoritative: false,
            answers: &[],
            authority: &[],
        }
    }
}

/// Writes `reply` to `q` within `limit` bytes (see the module docs).
pub fn encode(q: &Question, reply: &Reply<'_>, limit: u16) -> Vec<u8> {
    let mut metadata = Metadata::new(q.id, MessageType::Response, OpCode::Query);
    metadata.recursion_desired = q.recursion_desired;
    metadata.checking_disabled = q.checking_disabled;
    metadata.recursion_available = true;
    metadata.authoritative = reply.authoritative;
    metadata.response_code = reply.rcode;
    let edns = q.edns.map(|_| {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        e
    });
    let emit = |answers: &[Record], authority: &[Record], metadata: &Metadata| {
        let mut buf = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(limit);
        let header = emit_message_parts(
            metadata,
            &mut std::iter::once(&q.query).filter(|_| q.echo),
            &mut answers.iter(),
            &mut authority.iter(),
            &mut std::iter::empty::<&Record>(),
            edns.as_ref(),
            None,
            &mut encoder,
        );
        header.map(|h| (h, buf))
    };
    match emit(reply.answers, reply.authority, &metadata) {
        Ok((header, buf)) if !header.metadata.truncation => buf,
        _ => {
            // Too big (or unencodable): say so with TC and no records.
            metadata.truncation = true;
            match emit(&[], &[], &metadata) {
                Ok((_, buf)) => buf,
                Err(_) => header_only(q.id, ResponseCode::ServFail),
            }
        }
    }
}

/// A bare 12-byte reply header with `rcode` and no sections.
pub fn header_only(id: u16, rcode: ResponseCode) -> Vec<u8> {
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = rcode;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut buf = Vec::with_capacity(12);
    let mut encoder = BinEncoder::new(&mut buf);
    match hickory_proto::serialize::binary::BinEncodable::emit(&header, &mut encoder) {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    use super::*;

    fn query_bytes(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
        if let Some(p) = edns {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn parses_a_question() {
        let q = parse(&query_bytes(
            "WWW.Example.ORG.",
            RecordType::AAAA,
            Some(4096),
        ))
        .expect("q");
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.lower.to_string(), "www.example.org.");
        assert_eq!(q.query.name().to_string(), "WWW.Example.ORG.");
        assert!(q.recursion_desired);
        assert_eq!(q.edns, Some(4096));
        assert_eq!(Transport::Udp.limit(&q), EDNS_PAYLOAD);
        let q = parse(&query_bytes("a.", RecordType::A, None)).expect("q");
        assert_eq!((q.edns, Transport::Udp.limit(&q)), (None, 512));
        assert_eq!(Transport::Tcp.limit(&q), u16::MAX);
    }

    #[test]
    fn rejects() {
        assert_eq!(parse(&[]), Err(Reject::Malformed));
        assert_eq!(parse(&[0; 11]), Err(Reject::Malformed));
        let mut response = query_bytes("a.", RecordType::A, None);
        response[2] |= 0x80;
        assert_eq!(parse(&response), Err(Reject::Malformed));
        let axfr = parse(&query_bytes("a.", RecordType::AXFR, None));
        assert!(matches!(axfr, Err(Reject::Error(_, ResponseCode::Refused))));
        let mut no_question = query_bytes("a.", RecordType::A, None);
        no_question[5] = 0;
        no_question.truncate(12);
        let Err(Reject::Error(q, ResponseCode::FormErr)) = parse(&no_question) else {
            panic!("no question: FORMERR");
        };
        let reply = Message::from_vec(&encode(&q, &Reply::error(ResponseCode::FormErr), 512));
        assert!(
            reply.expect("reply").queries.is_empty(),
            "no made-up question"
        );
    }

    #[test]
    fn truncates_to_the_transport() {
        let q = parse(&query_bytes("big.test.", RecordType::A, None)).expect("q");
        let answers: Vec<Record> = (0..60u8)
            .map(|i| {
                Record::from_rdata(
                    q.query.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
                )
            })
            .collect();
        let reply = Reply {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: &answers,
            authority: &[],
        };
        let udp = Message::from_vec(&encode(&q, &reply, Transport::Udp.limit(&q))).expect("udp");
        assert!(udp.metadata.truncation && udp.answers.is_empty());
        assert_eq!(udp.metadata.id, 0x1234);
        let tcp = Message::from_vec(&encode(&q, &reply, Transport::Tcp.limit(&q))).expect("tcp");
        assert!(!tcp.metadata.truncation && tcp.metadata.authoritative);
        assert_eq!(tcp.answers.len(), 60);
        assert!(tcp.metadata.recursion_available && tcp.metadata.recursion_desired);
        let bare = Message::from_vec(&header_only(7, ResponseCode::Refused)).expect("bare");
        assert_eq!(
            (bare.metadata.id, bare.metadata.response_code),
            (7, ResponseCode::Refused)
        );
    }
}
