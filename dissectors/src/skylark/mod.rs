//! Skylark: the project's own Skype-like P2P voice protocol, specified normatively in
//! `dissectors/PROTOCOL.md` (section numbers below refer to it).
//!
//! What it does: the wire codec shared by the reference peer and the analyzer — the 12-byte
//! common header ([`header`]), typed TLV objects ([`object`]), the message catalogue with
//! each message's family, traffic class and fields ([`messages`]), zero-copy views and owned
//! messages with strict and lax parsers and emitters ([`codec`]), TCP framing and
//! resynchronisation ([`framing`]), the allocation-free content probe ([`probe`](mod@probe)) and the
//! registry glue ([`flow`], [`DESCRIPTOR`]), which gives a datagram shaped like a recent one
//! that one's row without parsing its body again (`repeat`).
//!
//! Guarantees: no panic on any input; every length, count and nesting depth bounded by the
//! `MAX_*` constants below; views borrow the input, never allocate. Must not: do I/O, read
//! clocks, compute cryptography (credentials and proofs are opaque blobs here).

/// Declares a wire enum that never fails on unknown values (smoltcp's `enum_with_unknown!`):
/// every known value maps to a variant, anything else to `Unknown(raw)`.
macro_rules! enum_with_unknown {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($ty:ident) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this implementation does not know; kept so it can be re-emitted.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            // Always inlined: every header converts its message type, and the u16 match
            // stayed a call of ~13 instructions (-0.3 % instructions a frame inlined).
            #[inline(always)]
            fn from(value: $ty) -> Self {
                enum_with_unknown!(@from $ty, $name, value, $( $variant = $value ),+)
            }
        }

        impl $name {
            /// The wire value (as `From`, but usable in constants).
            pub const fn raw(self) -> $ty {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
    // A byte-sized value converts through a table: a walk converts the kind of every
    // object, and the chain of compares below took ~10 instructions each time.
    (@from u8, $name:ident, $v:ident, $( $variant:ident = $value:expr ),+) => {{
        // Indexing in a constant cannot panic at run time: out of bounds fails the build.
        #[allow(clippy::indexing_slicing)]
        const TABLE: [$name; 256] = {
            let mut t = [$name::Unknown(0); 256];
            let mut i = 0;
            while i < 256 {
                t[i] = $name::Unknown(i as u8);
                i += 1;
            }
            $( t[($value) as usize] = $name::$variant; )+
            t
        };
        TABLE.get(usize::from($v)).copied().unwrap_or($name::Unknown($v))
    }};
    (@from $ty:ident, $name:ident, $v:ident, $( $variant:ident = $value:expr ),+) => {
        match $v {
            $( x if x == $value => $name::$variant, )+
            other => $name::Unknown(other),
        }
    };
}

pub mod codec;
pub mod flow;
pub mod framing;
pub mod header;
pub mod messages;
pub mod object;
pub mod probe;
mod repeat;

pub use codec::{
    Body, BodyView, LaxMessage, Media, MediaView, Message, MessageView, RedundancyIter, Stop,
};
pub use flow::{SkylarkDatagrams, SkylarkStream};
pub use framing::{MAX_RESYNC_SCAN, frame_len, parse_frame, resync};
pub use header::{Family, Flags, HEADER_LEN, Header, MAGIC, Packet, VERSION};
pub use messages::{Dir, ErrorCode, FieldId, MsgType};
pub use object::{Kind, Object, ObjectView, ObjectsView, RawObject, Value, ValueView};
pub use probe::probe;

use crate::registry::{DissectorDesc, Transport};

/// PROTOCOL.md §3.1: a body is at most 16384 bytes (header excluded).
pub const MAX_BODY_LEN: usize = 16_384;
/// PROTOCOL.md §4.3: at most 512 objects per message, counted at every depth.
pub const MAX_OBJECTS: usize = 512;
/// PROTOCOL.md §4.3: top-level objects have depth 1; nothing deeper than 4.
pub const MAX_DEPTH: usize = 4;
/// PROTOCOL.md §4.3: a string value is at most 1024 bytes of UTF-8.
pub const MAX_STRING_LEN: usize = 1024;
/// PROTOCOL.md §4.3: a blob value is at most 4096 bytes.
pub const MAX_BLOB_LEN: usize = 4096;
/// PROTOCOL.md §4.3: a list holds at most 256 items.
pub const MAX_LIST_ITEMS: usize = 256;
/// PROTOCOL.md §7.1: at most 4 redundant frames ride along with a voice frame.
pub const MAX_REDUNDANCY: usize = 4;
/// PROTOCOL.md §7.1: a codec frame (primary or redundant) is at most 255 bytes.
pub const MAX_FRAME_LEN: usize = 255;

/// PROTOCOL.md §2.2: fixed port of the bootstrap super nodes (UDP and TCP).
pub const BOOTSTRAP_PORT: u16 = 33033;
/// PROTOCOL.md §2.2: fixed TCP port of the login server.
pub const LOGIN_SERVER_PORT: u16 = 33034;

/// The registry entry for Skylark (PROTOCOL.md §2): UDP and TCP, recognised by content; the
/// two fixed ports only make it worth probing first.
pub const DESCRIPTOR: DissectorDesc = DissectorDesc {
    name: "skylark",
    transports: &[Transport::Udp, Transport::Tcp],
    port_hints: &[BOOTSTRAP_PORT, LOGIN_SERVER_PORT],
    probe,
    new_flow: flow::new_flow,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-sized wire enums convert through a table (`enum_with_unknown!`): every byte
    /// comes back unchanged, and a known value becomes its variant, not `Unknown`.
    #[test]
    fn byte_sized_enums_convert_every_byte_both_ways() {
        for b in 0..=u8::MAX {
            assert_eq!(u8::from(Kind::from(b)), b);
            assert_eq!(u8::from(FieldId::from(b)), b);
            assert_eq!(u8::from(Family::from(b)), b);
        }
        for id in FieldId::ALL {
            assert_eq!(FieldId::from(id.raw()), id);
        }
        assert_eq!(Kind::from(0x06), Kind::List);
        assert_eq!(Kind::from(0x07), Kind::Unknown(0x07));
        assert_eq!(Family::from(0x04), Family::Keepalive);
    }
}
