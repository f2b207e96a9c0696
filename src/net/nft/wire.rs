//! The nf_tables wire format, as far as boma needs it: netlink messages with nfgenmsg headers and
//! attributes, framed into one nfnetlink batch (BATCH_BEGIN … BATCH_END), the few expressions
//! boma's rules use, and the reading of the kernel's ACK and error answers. Numbers come from the
//! kernel's uapi headers (linux/netlink.h, linux/netfilter/nfnetlink.h, nf_tables.h). This module
//! only encodes and decodes bytes: it opens no socket and knows nothing of boma's rules.

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 1 << 15;

// linux/netfilter/nfnetlink.h
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNETLINK_V0: u8 = 0;
const AF_UNSPEC: u8 = 0;
pub(super) const NFPROTO_INET: u8 = 1;

// nf_tables.h: messages
pub(super) const NFT_MSG_NEWTABLE: u8 = 0;
pub(super) const NFT_MSG_DELTABLE: u8 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u8 = 3;
pub(super) const NFT_MSG_NEWRULE: u8 = 6;

// nf_tables.h: attributes
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_REDIR_REG_PROTO_MIN: u16 = 1;
const NFTA_REDIR_REG_PROTO_MAX: u16 = 2;
const NFTA_REDIR_FLAGS: u16 = 3;

// nf_tables.h / netfilter.h: values
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
pub(super) const NFT_CMP_EQ: u32 = 0;
pub(super) const NFT_CMP_NEQ: u32 = 1;
pub(super) const NFT_META_IIFNAME: u32 = 6;
pub(super) const NFT_META_OIFNAME: u32 = 7;
pub(super) const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CT_STATE: u32 = 0;
/// NF_NAT_RANGE_PROTO_SPECIFIED (linux/netfilter/nf_nat.h).
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
pub(super) const NF_DROP: u32 = 0;
pub(super) const NF_ACCEPT: u32 = 1;
pub(super) const NF_INET_PRE_ROUTING: u32 = 0;
pub(super) const NF_INET_FORWARD: u32 = 2;
pub(super) const NF_INET_POST_ROUTING: u32 = 4;
/// Conntrack state bits (NF_CT_STATE_BIT of IP_CT_ESTABLISHED and IP_CT_RELATED), host order.
pub(super) const CT_STATE_ESTABLISHED_RELATED: u32 = (1 << 1) | (1 << 2);

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink messages and attributes appended to one buffer. Integers inside nf_tables attributes
/// are big-endian (NLA_BE32); netlink headers are host order.
#[derive(Debug, Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    /// Starts a message (nlmsghdr + nfgenmsg); returns where it starts for [`Writer::end_msg`].
    fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub(super) fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub(super) fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A NUL-terminated string attribute.
    pub(super) fn attr_str(&mut self, ty: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(ty, &data);
    }

    /// A nested attribute whose content `body` writes.
    pub(super) fn nested(&mut self, ty: u16, body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        body(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// One element of a rule's expression list.
    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Self)) {
        self.nested(NFTA_LIST_ELEM, |w| {
            w.attr_str(NFTA_EXPR_NAME, name);
            w.nested(NFTA_EXPR_DATA, data);
        });
    }

    /// `meta load KEY => reg 1`.
    pub(super) fn meta_load(&mut self, key: u32) {
        self.expr("meta", |w| {
            w.attr_u32(NFTA_META_KEY, key);
            w.attr_u32(NFTA_META_DREG, NFT_REG_1);
        });
    }

    /// `cmp OP reg 1 DATA`.
    pub(super) fn cmp(&mut self, op: u32, data: &[u8]) {
        self.expr("cmp", |w| {
            w.attr_u32(NFTA_CMP_SREG, NFT_REG_1);
            w.attr_u32(NFTA_CMP_OP, op);
            w.nested(NFTA_CMP_DATA, |w| w.attr(NFTA_DATA_VALUE, data));
        });
    }

    /// `payload load LEN b @ transport header + OFFSET => reg 1`.
    pub(super) fn transport_load(&mut self, offset: u32, len: u32) {
        self.expr("payload", |w| {
            w.attr_u32(NFTA_PAYLOAD_DREG, NFT_REG_1);
            w.attr_u32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
            w.attr_u32(NFTA_PAYLOAD_OFFSET, offset);
            w.attr_u32(NFTA_PAYLOAD_LEN, len);
        });
    }

    /// `ct load state => reg 1`.
    pub(super) fn ct_state_load(&mut self) {
        self.expr("ct", |w| {
            w.attr_u32(NFTA_CT_DREG, NFT_REG_1);
            w.attr_u32(NFTA_CT_KEY, NFT_CT_STATE);
        });
    }

    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0` over `mask.len()` bytes.
    pub(super) fn and_mask(&mut self, mask: &[u8]) {
        let zero = vec![0u8; mask.len()];
        self.expr("bitwise", |w| {
            w.attr_u32(NFTA_BITWISE_SREG, NFT_REG_1);
            w.attr_u32(NFTA_BITWISE_DREG, NFT_REG_1);
            w.attr_u32(NFTA_BITWISE_LEN, mask.len() as u32);
            w.nested(NFTA_BITWISE_MASK, |w| w.attr(NFTA_DATA_VALUE, mask));
            w.nested(NFTA_BITWISE_XOR, |w| w.attr(NFTA_DATA_VALUE, &zero));
        });
    }

    /// `immediate reg 1 DATA`.
    pub(super) fn immediate(&mut self, data: &[u8]) {
        self.expr("immediate", |w| {
            w.attr_u32(NFTA_IMMEDIATE_DREG, NFT_REG_1);
            w.nested(NFTA_IMMEDIATE_DATA, |w| w.attr(NFTA_DATA_VALUE, data));
        });
    }

    /// `immediate reg 0 VERDICT` (NF_ACCEPT, NF_DROP).
    pub(super) fn verdict(&mut self, code: u32) {
        self.expr("immediate", |w| {
            w.attr_u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            w.nested(NFTA_IMMEDIATE_DATA, |w| {
                w.nested(NFTA_DATA_VERDICT, |w| w.attr_u32(NFTA_VERDICT_CODE, code));
            });
        });
    }

    /// `redir proto_min reg 1 proto_max reg 1`: redirect to the port held in reg 1.
    pub(super) fn redirect_to_reg1(&mut self) {
        self.expr("redir", |w| {
            w.attr_u32(NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
            w.attr_u32(NFTA_REDIR_REG_PROTO_MAX, NFT_REG_1);
            w.attr_u32(NFTA_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
        });
    }

    /// `masq`.
    pub(super) fn masquerade(&mut self) {
        self.nested(NFTA_LIST_ELEM, |w| w.attr_str(NFTA_EXPR_NAME, "masq"));
    }
}

/// One nfnetlink batch under construction: BATCH_BEGIN has sequence number `seq0`, the n-th
/// nf_tables message `seq0 + 1 + n` (each asks for an ACK), BATCH_END the next one.
#[derive(Debug)]
pub(super) struct Batch {
    w: Writer,
    seq0: u32,
    labels: Vec<String>,
}

/// A finished batch: the bytes to send, and what each message was, for the error report.
#[derive(Debug)]
pub(super) struct Sealed {
    pub(super) bytes: Vec<u8>,
    pub(super) seq0: u32,
    pub(super) labels: Vec<String>,
}

impl Batch {
    pub(super) fn new(seq0: u32) -> Self {
        let mut w = Writer::default();
        let start = w.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq0,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        w.end_msg(start);
        Batch {
            w,
            seq0,
            labels: Vec::new(),
        }
    }

    /// Appends an nf_tables message of type `ty` (NFT_MSG_*) for the inet family; `body` writes
    /// its attributes; `label` names it in errors.
    pub(super) fn add(
        &mut self,
        ty: u8,
        flags: u16,
        label: impl Into<String>,
        body: impl FnOnce(&mut Writer),
    ) {
        let seq = self.seq0.wrapping_add(1 + self.labels.len() as u32);
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(ty);
        let flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let start = self.w.begin_msg(ty, flags, seq, NFPROTO_INET, 0);
        body(&mut self.w);
        self.w.end_msg(start);
        self.labels.push(label.into());
    }

    pub(super) fn seal(mut self) -> Sealed {
        let seq = self.seq0.wrapping_add(1 + self.labels.len() as u32);
        let start = self.w.begin_msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end_msg(start);
        Sealed {
            bytes: self.w.buf,
            seq0: self.seq0,
            labels: self.labels,
        }
    }
}

/// The kernel's answer to one message: its sequence number and the error code (0: ACK,
/// otherwise a negative errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) seq: u32,
    pub(super) code: i32,
}

/// The NLMSG_ERROR answers (ACKs and errors) in one datagram; other messages are skipped.
/// None when the datagram is not a well-formed sequence of netlink messages.
pub(super) fn parse_answers(mut buf: &[u8]) -> Option<Vec<Answer>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
        let seq = u32::from_ne_bytes(buf.get(8..12)?.try_into().ok()?);
        if ty == NLMSG_ERROR {
            let code = i32::from_ne_bytes(buf.get(16..20)?.try_into().ok()?);
            out.push(Answer { seq, code });
        }
        buf = buf.get(align4(len).min(buf.len())..)?;
    }
    Some(out)
}

/// What the answers so far say about a sent batch.
#[derive(Debug)]
pub(super) struct Tally {
    seq0: u32,
    answered: Vec<bool>,
    /// The first refused message: (index in the batch, positive errno).
    pub(super) first_error: Option<(usize, i32)>,
    /// An error about the batch as a whole (BATCH_BEGIN's or BATCH_END's sequence number).
    pub(super) batch_error: Option<i32>,
}

impl Tally {
    pub(super) fn new(sealed: &Sealed) -> Self {
        Tally {
            seq0: sealed.seq0,
            answered: vec![false; sealed.labels.len()],
            first_error: None,
            batch_error: None,
        }
    }

    /// Counts one answer; answers to other sequence numbers are ignored.
    pub(super) fn record(&mut self, a: Answer) {
        let n = self.answered.len();
        let offset = a.seq.wrapping_sub(self.seq0) as usize;
        if offset == 0 || offset == n + 1 {
            if a.code != 0 {
                self.batch_error.get_or_insert(-a.code);
            }
        } else if (1..=n).contains(&offset) {
            let index = offset - 1;
            self.answered[index] = true;
            if a.code != 0 && self.first_error.is_none_or(|(i, _)| index < i) {
                self.first_error = Some((index, -a.code));
            }
        }
    }

    /// Whether every message is answered, or the batch as a whole was refused.
    pub(super) fn complete(&self) -> bool {
        self.batch_error.is_some() || self.answered.iter().all(|a| *a)
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
pub(super) mod tests;
