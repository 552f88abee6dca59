//! Where the driver hands ground truth: every [`Label`] (restamped with the driver's clock
//! at the moment its bytes went to the kernel) and every [`Event`].
//!
//! Sinks never fail the run: a write error is kept (the first one) and reported by
//! [`Sink::finish`], so a full disk cannot stop the nodes mid-call. Sinks must not block
//! for long — they run on the driver's single thread.

use crate::peer::truth::{Event, EventKind, EventWriter, Label, LabelWriter};
use dissectors::registry::TrafficClass;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Receives the ground truth of a running driver.
pub trait Sink {
    /// A message was handed to the kernel (its `ts` is the driver's clock at that moment).
    fn label(&mut self, label: &Label);
    /// A node reported a milestone.
    fn event(&mut self, event: &Event);
    /// Flushes; returns the first error seen since the start.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Discards everything.
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn label(&mut self, _: &Label) {}
    fn event(&mut self, _: &Event) {}
}

/// Counts labels per traffic class and events per kind (the lab's summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Indexed by [`TrafficClass::index`].
    pub labels: [u64; 5],
    pub events: Vec<(&'static str, u64)>,
}

impl Tally {
    pub fn labels_of(&self, class: TrafficClass) -> u64 {
        self.labels.get(class.index()).copied().unwrap_or(0)
    }

    pub fn events_of(&self, kind: &str) -> u64 {
        self.events
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    fn count_label(&mut self, l: &Label) {
        if let Some(slot) = self.labels.get_mut(l.class.index()) {
            *slot += 1;
        }
    }

    fn count_event(&mut self, e: &Event) {
        let kind = event_name(&e.kind);
        match self.events.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.events.push((kind, 1)),
        }
    }

    /// `login 12, lookup 4, …` then one line of event counts.
    pub fn render(&self) -> String {
        let classes: Vec<String> = TrafficClass::ALL
            .iter()
            .zip(&self.labels)
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect();
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "labels: {} (total {})\nevents: {}\n",
            classes.join(", "),
            self.labels.iter().sum::<u64>(),
            if events.is_empty() {
                "none".to_string()
            } else {
                events.join(", ")
            }
        )
    }
}

impl Sink for Tally {
    fn label(&mut self, label: &Label) {
        self.count_label(label);
    }
    fn event(&mut self, event: &Event) {
        self.count_event(event);
    }
}

/// The `event` column of events.csv for this kind.
pub fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Login { .. } => "login",
        EventKind::Lookup { .. } => "lookup",
        EventKind::CallSetup { .. } => "call-setup",
        EventKind::CallFailed { .. } => "call-failed",
        EventKind::CallEnd { .. } => "call-end",
        EventKind::ConferenceMixer { .. } => "conference-mixer",
        EventKind::Note { .. } => "note",
    }
}

/// One human-readable line for an event (what `p2ptrace peer client` prints).
pub fn event_line(e: &Event) -> String {
    let addr = |a: &Option<std::net::SocketAddr>| a.map_or("-".to_string(), |a| a.to_string());
    let what = match &e.kind {
        EventKind::Login { ok, sn, detail } => format!(
            "login {} sn={} {detail}",
            if *ok { "ok" } else { "FAILED" },
            addr(sn)
        ),
        EventKind::Lookup {
            target,
            found,
            rings,
            nodes,
        } => format!(
            "lookup {target}: {} (rings={rings} nodes={nodes})",
            found.map_or("not found".to_string(), |a| format!("found at {a}"))
        ),
        EventKind::CallSetup {
            call_id,
            peer,
            path,
            relay,
        } => format!(
            "call {call_id} with {peer} set up: {} relay={}",
            path.as_str(),
            addr(relay)
        ),
        EventKind::CallFailed { peer, reason } => format!("call to {peer} failed: {reason}"),
        EventKind::CallEnd { call_id, reason } => format!("call {call_id} ended: {reason}"),
        EventKind::ConferenceMixer { call_id, mixer } => {
            format!("conference {call_id}: mixer is {mixer}")
        }
        EventKind::Note { what } => what.clone(),
    };
    format!(
        "{} {} [{}] {what}",
        e.ts.display(3),
        e.node,
        e.role.as_str()
    )
}

/// Writes `labels.csv` and `events.csv` into a directory, and keeps a [`Tally`].
pub struct CsvSink {
    /// `None` once finished.
    labels: Option<LabelWriter<BufWriter<File>>>,
    events: Option<EventWriter<BufWriter<File>>>,
    error: Option<io::Error>,
    pub tally: Tally,
}

impl CsvSink {
    /// Creates `dir` if missing and both files in it (truncating old ones).
    pub fn create(dir: &Path) -> Result<CsvSink, (PathBuf, io::Error)> {
        std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|e| (path, e))
        };
        let labels = open("labels.csv")?;
        let events = open("events.csv")?;
        Ok(CsvSink {
            labels: Some(LabelWriter::new(labels).map_err(|e| (dir.join("labels.csv"), e))?),
            events: Some(EventWriter::new(events).map_err(|e| (dir.join("events.csv"), e))?),
            error: None,
            tally: Tally::default(),
        })
    }
}

impl Sink for CsvSink {
    fn label(&mut self, label: &Label) {
        self.tally.label(label);
        if let Some(Err(e)) = self.labels.as_mut().map(|w| w.write(label)) {
            self.error.get_or_insert(e);
        }
    }

    fn event(&mut self, event: &Event) {
        self.tally.event(event);
        if let Some(Err(e)) = self.events.as_mut().map(|w| w.write(event)) {
            self.error.get_or_insert(e);
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        // Later labels and events (none are expected after finish) are dropped.
        let labels = self
            .labels
            .take()
            .map_or(Ok(()), |w| w.into_inner().flush());
        let events = self
            .events
            .take()
            .map_or(Ok(()), |w| w.into_inner().flush());
        let flushed = labels.and(events);
        match self.error.take() {
            Some(e) => Err(e),
            None => flushed,
        }
    }
}

/// Prints every event as one line (stdout for `p2ptrace peer`).
pub struct PrintSink<W: Write> {
    out: W,
}

impl<W: Write> PrintSink<W> {
    pub fn new(out: W) -> Self {
        PrintSink { out }
    }
}

impl<W: Write> Sink for PrintSink<W> {
    fn label(&mut self, _: &Label) {}
    fn event(&mut self, event: &Event) {
        // A closed stdout must not stop the node.
        let _ = writeln!(self.out, "{}", event_line(event));
        let _ = self.out.flush();
    }
}

/// Feeds two sinks.
pub struct Tee<A, B>(pub A, pub B);

impl<A: Sink, B: Sink> Sink for Tee<A, B> {
    fn label(&mut self, label: &Label) {
        self.0.label(label);
        self.1.label(label);
    }
    fn event(&mut self, event: &Event) {
        self.0.event(event);
        self.1.event(event);
    }
    fn finish(&mut self) -> io::Result<()> {
        let a = self.0.finish();
        let b = self.1.finish();
        a.and(b)
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn label(&mut self, label: &Label) {
        (**self).label(label);
    }
    fn event(&mut self, event: &Event) {
        (**self).event(event);
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

impl<S: Sink> Sink for Option<S> {
    fn label(&mut self, label: &Label) {
        if let Some(s) = self {
            s.label(label);
        }
    }
    fn event(&mut self, event: &Event) {
        if let Some(s) = self {
            s.event(event);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        self.as_mut().map_or(Ok(()), Sink::finish)
    }
}
