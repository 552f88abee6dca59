//! The one error type of every parser in this crate, usable as a nom 8 error.

use nom::error::{ErrorKind, ParseError};

/// Why a parse stopped. `offset` fields count from the start of the input given to the
/// top-level entry point where known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DissectError {
    /// Input ended before the structure did; `needed` more bytes would let it continue.
    #[error("truncated: {needed} more bytes needed")]
    Truncated { needed: usize },
    /// A length, count or depth exceeds the documented bound.
    #[error("{what} is {value}, above the limit {max}")]
    TooLarge {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// A field holds a value the format forbids.
    #[error("invalid {what}")]
    Invalid { what: &'static str },
    /// A nom combinator failed (kind kept for diagnostics).
    #[error("malformed input ({kind:?})")]
    Nom { kind: ErrorKind },
}

impl<I> ParseError<I> for DissectError {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        DissectError::Nom { kind }
    }

    fn append(_input: I, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}
