//! Buffers handed to a worker thread over a bounded queue and sent back emptied, so the same
//! few buffers are refilled instead of fresh memory being touched per hand-over. Shared by
//! the report writers ([`crate::report::file_sink`]) and the consumer's thread
//! ([`crate::handoff`]); each owns its channels and decides what closing means.

use std::sync::mpsc::{Receiver, Sender};

/// A buffer as handed over: a `Vec`, or one wrapped with what the worker needs to know of it.
pub trait Buffer<T>: Into<Vec<T>> {
    /// Empties it for reuse.
    fn empty(&mut self);
}

impl<T> Buffer<T> for Vec<T> {
    fn empty(&mut self) {
        self.clear();
    }
}

/// Takes `buf`'s contents out and leaves an empty buffer in its place: one that came back on
/// `empty` if there is one, else a fresh one of `capacity`.
pub fn take_refill<T, B: Buffer<T>>(
    buf: &mut Vec<T>,
    empty: &Receiver<B>,
    capacity: usize,
) -> Vec<T> {
    let spare = empty
        .try_recv()
        .map_or_else(|_| Vec::with_capacity(capacity), Into::into);
    std::mem::replace(buf, spare)
}

/// The worker's side: runs `work` on each queued buffer in order and sends it back emptied;
/// stops at `work`'s first error (dropping the queue, which fails the producer's next send).
pub fn serve<T, B: Buffer<T>, E>(
    queued: Receiver<B>,
    emptied: Sender<B>,
    mut work: impl FnMut(&mut B) -> Result<(), E>,
) -> Result<(), E> {
    for mut buf in queued {
        work(&mut buf)?;
        buf.empty();
        // The producer may be gone already (its last buffer): this one is then just freed.
        let _ = emptied.send(buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn buffers_come_back_emptied_and_are_refilled() {
        let (full, queued) = mpsc::sync_channel(2);
        let (emptied, empty) = mpsc::channel();
        let mut buf = vec![1, 2, 3];
        let first = take_refill(&mut buf, &empty, 8);
        assert_eq!(
            (first.as_slice(), buf.capacity() >= 8),
            (&[1, 2, 3][..], true)
        );
        full.send(first).unwrap();
        drop(full);
        let mut seen = Vec::new();
        serve(queued, emptied, |b: &mut Vec<i32>| {
            seen.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3]);
        buf.push(4);
        let second = take_refill(&mut buf, &empty, 8);
        assert_eq!(second, [4]);
        // The buffer left in place is the one that came back (its capacity, emptied).
        assert!(buf.is_empty() && buf.capacity() >= 3);
    }

    #[test]
    fn the_worker_stops_at_the_first_error() {
        let (full, queued) = mpsc::sync_channel(2);
        let (emptied, _empty) = mpsc::channel();
        full.send(vec![1]).unwrap();
        full.send(vec![2]).unwrap();
        drop(full);
        let mut calls = 0;
        let r = serve(queued, emptied, |_: &mut Vec<i32>| {
            calls += 1;
            Err("disk full")
        });
        assert_eq!((r, calls), (Err("disk full"), 1));
    }
}
