use super::*;

/// (nlmsg_len, type, flags, seq, nfgenmsg family, res_id) of every message in `buf`.
pub(in crate::net::nft) fn headers(mut buf: &[u8]) -> Vec<(u32, u16, u16, u32, u8, u16)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap());
        let ty = u16::from_ne_bytes(buf[4..6].try_into().unwrap());
        let flags = u16::from_ne_bytes(buf[6..8].try_into().unwrap());
        let seq = u32::from_ne_bytes(buf[8..12].try_into().unwrap());
        let res_id = u16::from_be_bytes(buf[18..20].try_into().unwrap());
        out.push((len, ty, flags, seq, buf[16], res_id));
        buf = &buf[align4(len as usize)..];
    }
    out
}

/// The attributes in `buf`: (type without flags, nested flag, payload).
pub(in crate::net::nft) fn attrs(mut buf: &[u8]) -> Vec<(u16, bool, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes(buf[0..2].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(buf[2..4].try_into().unwrap());
        assert!(
            len >= 4 && len <= buf.len(),
            "attribute length {len} out of bounds"
        );
        out.push((ty & !NLA_F_NESTED, ty & NLA_F_NESTED != 0, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    assert!(buf.is_empty(), "trailing bytes after the attributes");
    out
}

#[test]
fn attributes_are_padded_to_four_bytes_with_the_unpadded_length() {
    let mut w = Writer::default();
    w.attr(1, b"abc");
    w.attr_str(2, "boma");
    assert_eq!(w.buf.len(), 8 + 12);
    assert_eq!(&w.buf[0..8], &[7, 0, 1, 0, b'a', b'b', b'c', 0]);
    // "boma" plus its NUL: length 9, padded to 12.
    assert_eq!(&w.buf[8..12], &[9, 0, 2, 0]);
    assert_eq!(&w.buf[12..17], b"boma\0");
}

#[test]
fn integers_are_big_endian_and_nests_are_flagged_and_cover_their_content() {
    let mut w = Writer::default();
    w.nested(4, |w| {
        w.attr_u32(1, 2);
        w.attr_u32(2, (-100i32) as u32);
    });
    let top = attrs(&w.buf);
    assert_eq!(top.len(), 1);
    let (ty, nested, inner) = top[0];
    assert_eq!((ty, nested), (4, true));
    assert_eq!(u16::from_ne_bytes(w.buf[0..2].try_into().unwrap()), 20);
    let inner = attrs(inner);
    assert_eq!(inner[0], (1, false, &[0, 0, 0, 2][..]));
    assert_eq!(inner[1], (2, false, &[0xff, 0xff, 0xff, 0x9c][..]));
}

#[test]
fn a_batch_is_begin_messages_end_with_consecutive_sequence_numbers() {
    let mut b = Batch::new(100);
    b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, "add", |w| {
        w.attr_str(NFTA_TABLE_NAME, "boma")
    });
    b.add(NFT_MSG_DELTABLE, 0, "del", |w| {
        w.attr_str(NFTA_TABLE_NAME, "boma")
    });
    let sealed = b.seal();
    assert_eq!(sealed.labels, ["add", "del"]);
    let h = headers(&sealed.bytes);
    let total: u32 = h.iter().map(|m| m.0).sum();
    assert_eq!(total as usize, sealed.bytes.len());
    // BATCH_BEGIN: nfgenmsg for AF_UNSPEC with res_id = the nf_tables subsystem, no ACK asked.
    assert_eq!(h[0], (20, 0x10, NLM_F_REQUEST, 100, AF_UNSPEC, 10));
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(
        (h[1].1, h[1].2, h[1].3, h[1].4),
        (0x0a00, ack | NLM_F_CREATE, 101, 1)
    );
    assert_eq!((h[2].1, h[2].2, h[2].3, h[2].4), (0x0a02, ack, 102, 1));
    assert_eq!(h[3], (20, 0x11, NLM_F_REQUEST, 103, AF_UNSPEC, 10));
    // The table name follows the 20 bytes of headers.
    let first = &sealed.bytes[20..20 + h[1].0 as usize];
    assert_eq!(
        attrs(&first[20..]),
        [(NFTA_TABLE_NAME, false, &b"boma\0"[..])]
    );
}

fn answer(seq: u32, code: i32, extra: usize) -> Vec<u8> {
    let len = 16 + 4 + 16 + extra;
    let mut m = Vec::new();
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&code.to_ne_bytes());
    m.resize(len, 0xaa);
    m.resize(align4(len), 0);
    m
}

#[test]
fn answers_are_read_from_a_datagram_and_garbage_is_refused() {
    let mut d = answer(7, 0, 0);
    d.extend(answer(8, -17, 3));
    assert_eq!(
        parse_answers(&d),
        Some(vec![
            Answer { seq: 7, code: 0 },
            Answer { seq: 8, code: -17 }
        ])
    );
    assert_eq!(parse_answers(&[]), Some(vec![]));
    let mut short = answer(7, 0, 0);
    short[0] = 200; // longer than the datagram
    assert_eq!(parse_answers(&short), None);
    assert_eq!(parse_answers(&[1, 2, 3]), None);
    let mut tiny = answer(7, 0, 0);
    tiny[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than a header
    assert_eq!(parse_answers(&tiny), None);
}

fn sealed(n: usize) -> Sealed {
    let mut b = Batch::new(10);
    for i in 0..n {
        b.add(NFT_MSG_NEWTABLE, 0, format!("m{i}"), |_| {});
    }
    b.seal()
}

#[test]
fn the_tally_completes_when_every_message_is_answered() {
    let s = sealed(3);
    let mut t = Tally::new(&s);
    t.record(Answer { seq: 11, code: 0 });
    t.record(Answer { seq: 99, code: -1 }); // not ours
    t.record(Answer { seq: 13, code: 0 });
    assert!(!t.complete());
    t.record(Answer { seq: 12, code: 0 });
    assert!(t.complete());
    assert_eq!((t.first_error, t.batch_error), (None, None));
}

#[test]
fn the_tally_keeps_the_earliest_refused_message_and_batch_errors_end_it() {
    let s = sealed(3);
    let mut t = Tally::new(&s);
    for (seq, code) in [(13, -2), (11, 0), (12, -22)] {
        t.record(Answer { seq, code });
    }
    assert!(t.complete());
    assert_eq!(t.first_error, Some((1, 22)));

    let mut t = Tally::new(&s);
    t.record(Answer { seq: 10, code: -1 }); // BATCH_BEGIN's: the commit was refused
    assert!(t.complete());
    assert_eq!(t.batch_error, Some(1));
    let mut t = Tally::new(&s);
    t.record(Answer { seq: 10, code: 0 }); // an ACK of the batch header is no error
    assert!(!t.complete());
}
