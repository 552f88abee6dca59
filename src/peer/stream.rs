//! Reading Skylark frames off a TCP stream for a node (PROTOCOL.md §2.3): bytes are
//! appended as they arrive and whole messages come out, strictly parsed. A peer is strict
//! where the analyzer is lax: garbage or an invalid frame is an error and the node closes
//! the connection (after counting it), it never resynchronises.

use dissectors::DissectError;
use dissectors::skylark::codec::Message;
use dissectors::skylark::framing;

/// Largest frame a node buffers: a header plus the largest body (PROTOCOL.md §3, §4.3).
pub const MAX_FRAME_BYTES: usize = dissectors::skylark::MAX_BODY_LEN + 12;

/// Accumulates one direction of a TCP connection and yields whole messages.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    failed: bool,
}

impl FrameReader {
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete message; `Ok(None)` until more bytes arrive. After an error the
    /// stream is unusable and every later call returns the error again.
    pub fn next_message(&mut self) -> Result<Option<Message>, DissectError> {
        if self.failed {
            return Err(DissectError::Invalid {
                what: "stream after a framing error",
            });
        }
        let total = match framing::frame_len(&self.buf) {
            Ok(n) => n,
            Err(DissectError::Truncated { .. }) => return Ok(None),
            Err(e) => return self.fail(e),
        };
        if total > MAX_FRAME_BYTES {
            return self.fail(DissectError::TooLarge {
                what: "frame",
                value: total as u64,
                max: MAX_FRAME_BYTES as u64,
            });
        }
        let Some(frame) = self.buf.get(..total) else {
            return Ok(None);
        };
        let msg = match Message::parse(frame) {
            Ok(m) => m,
            Err(e) => return self.fail(e),
        };
        self.buf.drain(..total);
        Ok(Some(msg))
    }

    /// Bytes buffered but not yet a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self, e: DissectError) -> Result<Option<Message>, DissectError> {
        self.failed = true;
        self.buf = Vec::new();
        Err(e)
    }
}

/// Hands every whole message buffered on one connection to `on_message`, in order, until
/// none is left or the connection is gone. `frames` finds the connection's reader in `node`
/// (`None`: gone — a message may have closed it) with what `on_message` needs to know of
/// the connection. The error is the framing error that ends the stream: the node counts it
/// and closes the connection (PROTOCOL.md §2.3).
pub fn drain_frames<N, T>(
    node: &mut N,
    mut frames: impl for<'a> FnMut(&'a mut N) -> Option<(&'a mut FrameReader, T)>,
    mut on_message: impl FnMut(&mut N, T, Message),
) -> Result<(), DissectError> {
    // Bounded: each message takes at least a header of the bytes buffered.
    loop {
        let Some((reader, conn)) = frames(node) else {
            return Ok(());
        };
        match reader.next_message()? {
            Some(msg) => on_message(node, conn, msg),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md §13 vector `nat-ping` … any short valid message will do: take the first
    /// vector of the spec.
    fn some_message() -> Vec<u8> {
        let spec = include_str!("../../dissectors/PROTOCOL.md");
        let start = spec.find("```hex vector=").unwrap();
        let body = &spec[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        let end = body.find("```").unwrap();
        body[..end]
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn messages_split_and_coalesced_come_out_whole() {
        let m = some_message();
        let mut stream = m.clone();
        stream.extend_from_slice(&m);
        let mut r = FrameReader::default();
        let mut got = 0;
        for b in &stream {
            r.push(std::slice::from_ref(b));
            while let Some(msg) = r.next_message().unwrap() {
                assert_eq!(msg.to_bytes().unwrap(), m);
                got += 1;
            }
        }
        assert_eq!(got, 2);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn garbage_fails_the_stream_for_good() {
        let mut r = FrameReader::default();
        r.push(b"GET / HTTP/1.1\r\n\r\n");
        assert!(r.next_message().is_err());
        r.push(&some_message());
        assert!(r.next_message().is_err());
    }

    /// A node with connections by number, like the peers' `conns` maps.
    #[derive(Default)]
    struct Node {
        conns: std::collections::HashMap<u32, FrameReader>,
        got: Vec<(u32, usize)>,
    }

    fn drain_conn(node: &mut Node, conn: u32, close_after: usize) -> Result<(), DissectError> {
        drain_frames(
            node,
            |n: &mut Node| n.conns.get_mut(&conn).map(|r| (r, conn)),
            |n, c, msg| {
                n.got.push((c, msg.to_bytes().unwrap().len()));
                if n.got.len() == close_after {
                    n.conns.remove(&c);
                }
            },
        )
    }

    #[test]
    fn draining_hands_out_whole_messages_until_none_is_left_the_conn_goes_or_framing_fails() {
        let m = some_message();
        let mut node = Node::default();
        node.conns.insert(7, FrameReader::default());
        let reader = node.conns.get_mut(&7).unwrap();
        reader.push(&[m.as_slice(), &m, &m[..5]].concat());
        assert!(drain_conn(&mut node, 7, usize::MAX).is_ok());
        assert_eq!(
            node.got,
            [(7, m.len()), (7, m.len())],
            "the cut third waits"
        );

        let reader = node.conns.get_mut(&7).unwrap();
        reader.push(&[&m[5..], b"garbage!garbage!"].concat());
        assert!(
            drain_conn(&mut node, 7, usize::MAX).is_err(),
            "framing error ends it"
        );
        assert_eq!(
            node.got.len(),
            3,
            "messages before the garbage were handed out"
        );

        node.got.clear();
        node.conns.insert(8, FrameReader::default());
        node.conns
            .get_mut(&8)
            .unwrap()
            .push(&[m.as_slice(), &m].concat());
        assert!(drain_conn(&mut node, 8, 1).is_ok());
        assert_eq!(
            node.got,
            [(8, m.len())],
            "a message that closes the conn stops it"
        );
        assert!(drain_conn(&mut node, 9, 1).is_ok(), "no such conn");
    }
}
