//! The Skylark message catalogue (PROTOCOL.md §5–§7): every message type with its family,
//! traffic class, direction (request, response or notification) and fields; the global field
//! id table (each id has one fixed object kind, PROTOCOL.md §4.4) and the error codes (§9).
//!
//! Guarantees: pure tables, no allocation; unknown values map to `Unknown` variants and are
//! never an error here. Must not: parse bytes (see `codec`).

use super::header::Family;
use super::object::Kind;
use crate::registry::TrafficClass;

/// Whether a message asks, answers or just tells (PROTOCOL.md §3.2: the `RESPONSE` flag is
/// set exactly on responses and errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Request,
    Response,
    Notification,
}

/// Presence of a field in a message (PROTOCOL.md §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    Mandatory,
    Optional,
}

use Need::{Mandatory as M, Optional as O};

enum_with_unknown! {
    /// Message type: family in the high byte, number in the low byte (PROTOCOL.md §3.3).
    pub enum MsgType(u16) {
        HcProbe = 0x0101,
        HcProbeAck = 0x0102,
        AuthHello = 0x0103,
        AuthChallenge = 0x0104,
        AuthProof = 0x0105,
        Credential = 0x0106,
        BuddyList = 0x0107,
        SnRegister = 0x0108,
        SnRegisterAck = 0x0109,
        FallbackProbe = 0x010a,
        FallbackProbeAck = 0x010b,
        Search = 0x0201,
        SearchResult = 0x0202,
        SearchReferral = 0x0203,
        PresenceQuery = 0x0204,
        PresenceReport = 0x0205,
        PresenceUpdate = 0x0206,
        HcExchangeRequest = 0x0207,
        HcExchange = 0x0208,
        Invite = 0x0301,
        Ringing = 0x0302,
        Accept = 0x0303,
        Reject = 0x0304,
        Cancel = 0x0305,
        Hold = 0x0306,
        Resume = 0x0307,
        Bye = 0x0308,
        RelayRequest = 0x0309,
        RelayGrant = 0x030a,
        ConfJoin = 0x030b,
        ConfLeave = 0x030c,
        ConfMixer = 0x030d,
        SnRefresh = 0x0401,
        SnRefreshAck = 0x0402,
        NatPing = 0x0403,
        NatPong = 0x0404,
        HoldKeepalive = 0x0405,
        Voice = 0x0501,
        Mix = 0x0502,
    }
}

impl MsgType {
    /// Every known message type, in catalogue order.
    pub const ALL: [MsgType; 39] = [
        MsgType::HcProbe,
        MsgType::HcProbeAck,
        MsgType::AuthHello,
        MsgType::AuthChallenge,
        MsgType::AuthProof,
        MsgType::Credential,
        MsgType::BuddyList,
        MsgType::SnRegister,
        MsgType::SnRegisterAck,
        MsgType::FallbackProbe,
        MsgType::FallbackProbeAck,
        MsgType::Search,
        MsgType::SearchResult,
        MsgType::SearchReferral,
        MsgType::PresenceQuery,
        MsgType::PresenceReport,
        MsgType::PresenceUpdate,
        MsgType::HcExchangeRequest,
        MsgType::HcExchange,
        MsgType::Invite,
        MsgType::Ringing,
        MsgType::Accept,
        MsgType::Reject,
        MsgType::Cancel,
        MsgType::Hold,
        MsgType::Resume,
        MsgType::Bye,
        MsgType::RelayRequest,
        MsgType::RelayGrant,
        MsgType::ConfJoin,
        MsgType::ConfLeave,
        MsgType::ConfMixer,
        MsgType::SnRefresh,
        MsgType::SnRefreshAck,
        MsgType::NatPing,
        MsgType::NatPong,
        MsgType::HoldKeepalive,
        MsgType::Voice,
        MsgType::Mix,
    ];

    pub fn family(self) -> Family {
        Family::from((u16::from(self) >> 8) as u8)
    }

    /// PROTOCOL.md §3.3: the family is the traffic class; `None` for unknown families.
    pub fn class(self) -> Option<TrafficClass> {
        match self.family() {
            Family::Login => Some(TrafficClass::Login),
            Family::Lookup => Some(TrafficClass::Lookup),
            Family::Signalling => Some(TrafficClass::Signalling),
            Family::Keepalive => Some(TrafficClass::Keepalive),
            Family::Media => Some(TrafficClass::Media),
            Family::Unknown(_) => None,
        }
    }

    /// The name used in the spec, test vectors and `messages.csv`.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::HcProbe => "hc-probe",
            MsgType::HcProbeAck => "hc-probe-ack",
            MsgType::AuthHello => "auth-hello",
            MsgType::AuthChallenge => "auth-challenge",
            MsgType::AuthProof => "auth-proof",
            MsgType::Credential => "credential",
            MsgType::BuddyList => "buddy-list",
            MsgType::SnRegister => "sn-register",
            MsgType::SnRegisterAck => "sn-register-ack",
            MsgType::FallbackProbe => "fallback-probe",
            MsgType::FallbackProbeAck => "fallback-probe-ack",
            MsgType::Search => "search",
            MsgType::SearchResult => "search-result",
            MsgType::SearchReferral => "search-referral",
            MsgType::PresenceQuery => "presence-query",
            MsgType::PresenceReport => "presence-report",
            MsgType::PresenceUpdate => "presence-update",
            MsgType::HcExchangeRequest => "hc-exchange-request",
            MsgType::HcExchange => "hc-exchange",
            MsgType::Invite => "invite",
            MsgType::Ringing => "ringing",
            MsgType::Accept => "accept",
            MsgType::Reject => "reject",
            MsgType::Cancel => "cancel",
            MsgType::Hold => "hold",
            MsgType::Resume => "resume",
            MsgType::Bye => "bye",
            MsgType::RelayRequest => "relay-request",
            MsgType::RelayGrant => "relay-grant",
            MsgType::ConfJoin => "conf-join",
            MsgType::ConfLeave => "conf-leave",
            MsgType::ConfMixer => "conf-mixer",
            MsgType::SnRefresh => "sn-refresh",
            MsgType::SnRefreshAck => "sn-refresh-ack",
            MsgType::NatPing => "nat-ping",
            MsgType::NatPong => "nat-pong",
            MsgType::HoldKeepalive => "hold-keepalive",
            MsgType::Voice => "voice",
            MsgType::Mix => "mix",
            MsgType::Unknown(_) => "unknown",
        }
    }

    /// The number a decoded message carries for this type (`registry::Message::type_code`).
    pub fn type_code(self) -> Option<std::num::NonZeroU16> {
        std::num::NonZeroU16::new(u16::from(self))
    }

    /// Looks a type up by its catalogue name.
    pub fn from_name(name: &str) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Direction; `None` for unknown types.
    pub fn dir(self) -> Option<Dir> {
        use MsgType::*;
        Some(match self {
            HcProbe | AuthHello | AuthProof | SnRegister | FallbackProbe | Search
            | PresenceQuery | HcExchangeRequest | Invite | RelayRequest | SnRefresh | NatPing => {
                Dir::Request
            }
            HcProbeAck | AuthChallenge | Credential | BuddyList | SnRegisterAck
            | FallbackProbeAck | SearchResult | SearchReferral | PresenceReport | HcExchange
            | Ringing | Accept | Reject | RelayGrant | SnRefreshAck | NatPong => Dir::Response,
            PresenceUpdate | Cancel | Hold | Resume | Bye | ConfJoin | ConfLeave | ConfMixer
            | HoldKeepalive | Voice | Mix => Dir::Notification,
            Unknown(_) => return None,
        })
    }

    /// PROTOCOL.md §7: media-family bodies use the compact media layout, not TLV objects.
    pub fn is_media(self) -> bool {
        self.family() == Family::Media
    }

    /// The fields of the message body (PROTOCOL.md §5.1); empty for media and unknown types.
    pub fn fields(self) -> &'static [(FieldId, Need)] {
        use FieldId as F;
        use MsgType::*;
        match self {
            HcProbe => &[(F::NodeId, M), (F::Software, O)],
            HcProbeAck => &[(F::NodeId, M), (F::Reflexive, M), (F::SnList, O)],
            AuthHello => &[(F::User, M), (F::Software, M), (F::NodeId, O)],
            AuthChallenge => &[
                (F::Salt, M),
                (F::Nonce, M),
                (F::HashAlg, M),
                (F::ArgonM, O),
                (F::ArgonT, O),
                (F::ArgonP, O),
            ],
            AuthProof => &[(F::User, M), (F::Proof, M)],
            Credential => &[(F::CredentialBlob, M), (F::Expiry, M), (F::SnList, O)],
            BuddyList => &[(F::Buddies, M)],
            SnRegister => &[
                (F::User, M),
                (F::CredentialBlob, M),
                (F::Expiry, M),
                (F::Addr, M),
                (F::NatType, M),
            ],
            SnRegisterAck => &[(F::Ttl, M), (F::SnList, O)],
            FallbackProbe => &[(F::NodeId, M)],
            FallbackProbeAck => &[(F::NodeId, M), (F::Reflexive, O)],
            Search => &[(F::Target, M), (F::Ring, M)],
            SearchResult => &[(F::Target, M), (F::Entry, M)],
            SearchReferral => &[(F::Target, M), (F::Ring, M), (F::SnList, M)],
            PresenceQuery => &[(F::Users, M)],
            PresenceReport => &[(F::Entries, M)],
            PresenceUpdate => &[(F::User, M), (F::Status, M)],
            HcExchangeRequest => &[(F::MaxCount, M)],
            HcExchange => &[(F::SnList, M)],
            Invite => &[
                (F::CallId, M),
                (F::Caller, M),
                (F::Callee, M),
                (F::MediaAddr, M),
                (F::Codecs, M),
                (F::FrameMs, M),
                (F::Redundancy, O),
            ],
            Ringing | Cancel | Hold | Resume => &[(F::CallId, M)],
            Accept => &[(F::CallId, M), (F::MediaAddr, M), (F::Codec, M)],
            Reject => &[(F::CallId, M), (F::ErrorCode, M), (F::Reason, O)],
            Bye => &[(F::CallId, M), (F::Reason, O)],
            RelayRequest => &[(F::CallId, M), (F::Callee, M), (F::RelayToken, O)],
            RelayGrant => &[(F::CallId, M), (F::RelayAddr, M), (F::RelayToken, M)],
            ConfJoin => &[(F::CallId, M), (F::User, M), (F::MediaAddr, M)],
            ConfLeave => &[(F::CallId, M), (F::User, M)],
            ConfMixer => &[
                (F::CallId, M),
                (F::Mixer, M),
                (F::MediaAddr, M),
                (F::Members, M),
            ],
            SnRefresh => &[
                (F::User, M),
                (F::Seq, M),
                (F::Full, O),
                (F::Status, O),
                (F::SnAddr, O),
            ],
            SnRefreshAck => &[(F::Seq, M), (F::SnList, O)],
            NatPing => &[(F::NodeId, M), (F::Seq, M)],
            NatPong => &[(F::NodeId, M), (F::Seq, M), (F::Reflexive, M)],
            HoldKeepalive => &[(F::CallId, M), (F::Seq, M)],
            Voice | Mix | Unknown(_) => &[],
        }
    }
}

/// PROTOCOL.md §9: the body of an error response (flags `RE`, type of the request).
pub const ERROR_FIELDS: &[(FieldId, Need)] = &[
    (FieldId::ErrorCode, M),
    (FieldId::Reason, O),
    (FieldId::SnList, O),
];

enum_with_unknown! {
    /// Field ids (PROTOCOL.md §4.4). Each id has exactly one object kind, everywhere.
    pub enum FieldId(u8) {
        User = 0x01,
        Software = 0x02,
        NodeId = 0x03,
        Addr = 0x04,
        Reflexive = 0x05,
        SnList = 0x06,
        Salt = 0x07,
        Nonce = 0x08,
        HashAlg = 0x09,
        Proof = 0x0a,
        CredentialBlob = 0x0b,
        Expiry = 0x0c,
        Buddies = 0x0d,
        NatType = 0x0e,
        Ttl = 0x0f,
        ErrorCode = 0x10,
        Reason = 0x11,
        Target = 0x12,
        Ring = 0x13,
        Status = 0x14,
        Entry = 0x15,
        MaxCount = 0x16,
        CallId = 0x17,
        Caller = 0x18,
        Callee = 0x19,
        MediaAddr = 0x1a,
        Codecs = 0x1b,
        Codec = 0x1c,
        FrameMs = 0x1d,
        RelayAddr = 0x1e,
        RelayToken = 0x1f,
        Members = 0x20,
        Mixer = 0x21,
        Seq = 0x22,
        Full = 0x23,
        SnAddr = 0x24,
        Redundancy = 0x25,
        Users = 0x26,
        Entries = 0x27,
        ArgonM = 0x28,
        ArgonT = 0x29,
        ArgonP = 0x2a,
    }
}

impl FieldId {
    pub const ALL: [FieldId; 42] = [
        FieldId::User,
        FieldId::Software,
        FieldId::NodeId,
        FieldId::Addr,
        FieldId::Reflexive,
        FieldId::SnList,
        FieldId::Salt,
        FieldId::Nonce,
        FieldId::HashAlg,
        FieldId::Proof,
        FieldId::CredentialBlob,
        FieldId::Expiry,
        FieldId::Buddies,
        FieldId::NatType,
        FieldId::Ttl,
        FieldId::ErrorCode,
        FieldId::Reason,
        FieldId::Target,
        FieldId::Ring,
        FieldId::Status,
        FieldId::Entry,
        FieldId::MaxCount,
        FieldId::CallId,
        FieldId::Caller,
        FieldId::Callee,
        FieldId::MediaAddr,
        FieldId::Codecs,
        FieldId::Codec,
        FieldId::FrameMs,
        FieldId::RelayAddr,
        FieldId::RelayToken,
        FieldId::Members,
        FieldId::Mixer,
        FieldId::Seq,
        FieldId::Full,
        FieldId::SnAddr,
        FieldId::Redundancy,
        FieldId::Users,
        FieldId::Entries,
        FieldId::ArgonM,
        FieldId::ArgonT,
        FieldId::ArgonP,
    ];

    /// The one kind this id carries; `None` for unknown ids (any kind accepted).
    pub const fn kind(self) -> Option<Kind> {
        use FieldId::*;
        Some(match self {
            User | Software | Reason | Target | Caller | Callee | Mixer => Kind::Str,
            NodeId | Expiry => Kind::U64,
            Addr | Reflexive | MediaAddr | RelayAddr | SnAddr => Kind::Addr,
            SnList | Buddies | Entry | Codecs | Members | Users | Entries => Kind::List,
            Salt | Nonce | Proof | CredentialBlob | RelayToken => Kind::Blob,
            HashAlg | NatType | Ttl | ErrorCode | Ring | Status | MaxCount | CallId | Codec
            | FrameMs | Seq | Full | Redundancy | ArgonM | ArgonT | ArgonP => Kind::U32,
            Unknown(_) => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use FieldId::*;
        match self {
            User => "user",
            Software => "software",
            NodeId => "node-id",
            Addr => "addr",
            Reflexive => "reflexive",
            SnList => "sn-list",
            Salt => "salt",
            Nonce => "nonce",
            HashAlg => "hash-alg",
            Proof => "proof",
            CredentialBlob => "credential",
            Expiry => "expiry",
            Buddies => "buddies",
            NatType => "nat-type",
            Ttl => "ttl",
            ErrorCode => "error-code",
            Reason => "reason",
            Target => "target",
            Ring => "ring",
            Status => "status",
            Entry => "entry",
            MaxCount => "max-count",
            CallId => "call-id",
            Caller => "caller",
            Callee => "callee",
            MediaAddr => "media-addr",
            Codecs => "codecs",
            Codec => "codec",
            FrameMs => "frame-ms",
            RelayAddr => "relay-addr",
            RelayToken => "relay-token",
            Members => "members",
            Mixer => "mixer",
            Seq => "seq",
            Full => "full",
            SnAddr => "sn-addr",
            Redundancy => "redundancy",
            Users => "users",
            Entries => "entries",
            ArgonM => "argon-m",
            ArgonT => "argon-t",
            ArgonP => "argon-p",
            Unknown(_) => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<FieldId> {
        FieldId::ALL.iter().copied().find(|f| f.name() == name)
    }
}

enum_with_unknown! {
    /// Error codes carried in `error-code` (PROTOCOL.md §9).
    pub enum ErrorCode(u32) {
        BadRequest = 1,
        UnsupportedVersion = 2,
        Unauthenticated = 3,
        AuthFailed = 4,
        CredentialExpired = 5,
        NotFound = 6,
        Busy = 7,
        Declined = 8,
        Overloaded = 9,
        RelayUnavailable = 10,
        UnknownCall = 11,
        RateLimited = 12,
        Internal = 13,
    }
}

impl ErrorCode {
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad-request",
            UnsupportedVersion => "unsupported-version",
            Unauthenticated => "unauthenticated",
            AuthFailed => "auth-failed",
            CredentialExpired => "credential-expired",
            NotFound => "not-found",
            Busy => "busy",
            Declined => "declined",
            Overloaded => "overloaded",
            RelayUnavailable => "relay-unavailable",
            UnknownCall => "unknown-call",
            RateLimited => "rate-limited",
            Internal => "internal",
            Unknown(_) => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_has_name_dir_class_and_round_trips() {
        for t in MsgType::ALL {
            assert_ne!(t.name(), "unknown");
            assert!(t.dir().is_some());
            assert!(t.class().is_some());
            assert_eq!(MsgType::from(u16::from(t)), t);
            assert_eq!(MsgType::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn every_field_has_one_kind_and_a_unique_name() {
        for f in FieldId::ALL {
            assert!(f.kind().is_some());
            assert_eq!(FieldId::from_name(f.name()), Some(f));
            assert_eq!(FieldId::from(u8::from(f)), f);
        }
    }

    #[test]
    fn unknown_type_keeps_its_value() {
        assert_eq!(MsgType::from(0x01ff), MsgType::Unknown(0x01ff));
        assert_eq!(u16::from(MsgType::Unknown(0x01ff)), 0x01ff);
        assert_eq!(MsgType::Unknown(0x01ff).class(), Some(TrafficClass::Login));
    }
}
