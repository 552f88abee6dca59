//! The message kinds the measurements act on, as one-byte values: the classifier names a
//! message's kind once ([`super::Classified::known`]) and every stage after it (phone-home
//! contacts, keepalives, host roles, logins, lookups) switches on that value instead of
//! comparing the kind's name, and a kind none of them singles out ([`Known::Other`]: the NAT
//! keepalives that make most of a busy hour) skips every stage but the phone-home count
//! (which counts all traffic to or from home). A Skylark message's kind comes from the type
//! number its dissector read (PROTOCOL.md §3.3), not from its name.
//!
//! Guarantees: [`Known::name`] is the canonical name the classifier gives the same message
//! (debug builds check every verdict), and [`Known::from_name`] inverts it.

use dissectors::registry::Message;
use dissectors::skylark::MsgType;
use dissectors::stun::{Class, MessageType as StunType, Method};

/// A message kind some measurement acts on; every other kind is [`Known::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    // Skylark login (PROTOCOL.md §6, §8.1).
    HcProbe,
    HcProbeAck,
    AuthHello,
    AuthChallenge,
    AuthProof,
    Credential,
    BuddyList,
    SnRegister,
    SnRegisterAck,
    FallbackProbe,
    FallbackProbeAck,
    // Skylark lookup (§8.2).
    Search,
    SearchResult,
    SearchReferral,
    // Skylark keepalive (§8.5) and the frames of a call (§7).
    SnRefresh,
    HoldKeepalive,
    Voice,
    Mix,
    /// STUN Binding (RFC 8489 §3): NAT discovery during login (§8.1 step 3).
    StunBindingRequest,
    StunBindingSuccess,
    StunBindingError,
    /// The phone-home requests of §10 and their responses.
    HttpVersionCheck,
    HttpVersionResponse,
    HttpTelemetry,
    HttpTelemetryResponse,
    HttpContacts,
    HttpContactsResponse,
    /// A kind no measurement singles out (its name is still in `Classified::kind`):
    /// [`crate::measure::Measurements::observe`] skips every stage after phone-home for it,
    /// so a kind a stage acts on must have a variant above.
    Other,
}

/// Every known kind from Skylark, with its type.
const SKYLARK: [(Known, MsgType); 18] = [
    (Known::HcProbe, MsgType::HcProbe),
    (Known::HcProbeAck, MsgType::HcProbeAck),
    (Known::AuthHello, MsgType::AuthHello),
    (Known::AuthChallenge, MsgType::AuthChallenge),
    (Known::AuthProof, MsgType::AuthProof),
    (Known::Credential, MsgType::Credential),
    (Known::BuddyList, MsgType::BuddyList),
    (Known::SnRegister, MsgType::SnRegister),
    (Known::SnRegisterAck, MsgType::SnRegisterAck),
    (Known::FallbackProbe, MsgType::FallbackProbe),
    (Known::FallbackProbeAck, MsgType::FallbackProbeAck),
    (Known::Search, MsgType::Search),
    (Known::SearchResult, MsgType::SearchResult),
    (Known::SearchReferral, MsgType::SearchReferral),
    (Known::SnRefresh, MsgType::SnRefresh),
    (Known::HoldKeepalive, MsgType::HoldKeepalive),
    (Known::Voice, MsgType::Voice),
    (Known::Mix, MsgType::Mix),
];

/// [`SKYLARK`] by type: `[family][number]` (a type outside it does not compile).
const BY_CODE: [[Known; 16]; 6] = {
    let mut table = [[Known::Other; 16]; 6];
    let mut i = 0;
    while i < SKYLARK.len() {
        let (known, t) = SKYLARK[i];
        let code = t.raw();
        table[(code >> 8) as usize][(code & 0xff) as usize] = known;
        i += 1;
    }
    table
};

/// Every known kind not from Skylark.
const OTHERS: [Known; 9] = [
    Known::StunBindingRequest,
    Known::StunBindingSuccess,
    Known::StunBindingError,
    Known::HttpVersionCheck,
    Known::HttpVersionResponse,
    Known::HttpTelemetry,
    Known::HttpTelemetryResponse,
    Known::HttpContacts,
    Known::HttpContactsResponse,
];

impl Known {
    /// The canonical name (labels.csv's `msg_type`); `None` for [`Known::Other`].
    pub fn name(self) -> Option<&'static str> {
        if let Some((_, t)) = SKYLARK.iter().find(|(k, _)| *k == self) {
            return Some(t.name());
        }
        Some(match self {
            Known::StunBindingRequest => "stun-binding-request",
            Known::StunBindingSuccess => "stun-binding-success",
            Known::StunBindingError => "stun-binding-error",
            Known::HttpVersionCheck => "http-version-check",
            Known::HttpVersionResponse => "http-version-response",
            Known::HttpTelemetry => "http-telemetry",
            Known::HttpTelemetryResponse => "http-telemetry-response",
            Known::HttpContacts => "http-contacts",
            Known::HttpContactsResponse => "http-contacts-response",
            _ => return None,
        })
    }

    /// The known kind a canonical name stands for ([`Known::Other`] if none): a linear
    /// search, for tests, debug checks and callers that only have the name.
    pub fn from_name(name: &str) -> Known {
        let mut all = SKYLARK.iter().map(|(k, _)| *k).chain(OTHERS);
        all.find(|k| k.name() == Some(name)).unwrap_or(Known::Other)
    }

    /// The kind of a Skylark message of type `code` (PROTOCOL.md §3.3: family in the high
    /// byte, number in the low): one table load, once per message.
    fn of_skylark(code: u16) -> Known {
        let (family, number) = (usize::from(code >> 8), usize::from(code & 0xff));
        let row = BY_CODE.get(family);
        row.and_then(|r| r.get(number))
            .copied()
            .unwrap_or(Known::Other)
    }

    /// A Skylark message's kind, from the type its dissector read.
    pub(super) fn skylark(msg: &Message) -> Known {
        msg.type_code
            .map_or(Known::Other, |c| Known::of_skylark(c.get()))
    }

    /// A STUN message's kind, from the type its dissector read.
    pub(super) fn stun(msg: &Message) -> Known {
        let Some(StunType {
            method: Method::Binding,
            class,
        }) = msg.type_code.map(|c| StunType::from_u16(c.get()))
        else {
            return Known::Other;
        };
        match class {
            Class::Request => Known::StunBindingRequest,
            Class::Success => Known::StunBindingSuccess,
            Class::Error => Known::StunBindingError,
            Class::Indication => Known::Other,
        }
    }

    /// The response kind to a phone-home request kind.
    pub(super) fn response(self) -> Option<Known> {
        match self {
            Known::HttpVersionCheck => Some(Known::HttpVersionResponse),
            Known::HttpTelemetry => Some(Known::HttpTelemetryResponse),
            Known::HttpContacts => Some(Known::HttpContactsResponse),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU16;

    #[test]
    fn every_known_kind_has_a_name_that_names_it_back() {
        for (k, t) in SKYLARK {
            assert_eq!((Known::of_skylark(t.raw()), k.name()), (k, Some(t.name())));
        }
        for k in SKYLARK.map(|(k, _)| k).into_iter().chain(OTHERS) {
            let name = k.name().expect("a known kind has a name");
            assert_eq!(Known::from_name(name), k, "{name}");
        }
        assert_eq!(Known::Other.name(), None);
        for other in [
            "unknown",
            "resync",
            "nat-ping",
            "http-get",
            "stun-binding-indication",
        ] {
            assert_eq!(Known::from_name(other), Known::Other, "{other}");
        }
    }

    #[test]
    fn skylark_types_outside_the_table_are_other() {
        for code in 0..=u16::MAX {
            let t = MsgType::from(code);
            let listed = SKYLARK.iter().any(|(_, s)| *s == t);
            assert_eq!(Known::of_skylark(code) != Known::Other, listed, "{t:?}");
        }
    }

    fn message(protocol: &'static str, code: Option<u16>) -> Message {
        Message {
            protocol,
            msg_type: "x".into(),
            type_code: code.and_then(NonZeroU16::new),
            txn_id: None,
            call_id: None,
            len: 20,
            status: dissectors::registry::Status::Complete,
            class: None,
            detail: None,
            call: None,
        }
    }

    #[test]
    fn kinds_come_from_the_type_number() {
        let stun = [
            (Some(0x0001), Known::StunBindingRequest),
            (Some(0x0101), Known::StunBindingSuccess),
            (Some(0x0111), Known::StunBindingError),
            (Some(0x0011), Known::Other), // a binding indication
            (Some(0x0003), Known::Other), // an allocate request
            (None, Known::Other),         // channel data
        ];
        for (code, want) in stun {
            assert_eq!(Known::stun(&message("stun", code)), want, "{code:?}");
        }
        let skylark = [
            (Some(0x0103), Known::AuthHello),
            (Some(0x0403), Known::Other), // nat-ping
            (Some(0x0fff), Known::Other), // no such type
            (None, Known::Other),         // a resync
        ];
        for (code, want) in skylark {
            assert_eq!(Known::skylark(&message("skylark", code)), want, "{code:?}");
        }
    }
}
