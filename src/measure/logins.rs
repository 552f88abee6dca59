//! Client logins (`logins.csv`, PROTOCOL.md §8.1): one row per login attempt with its
//! steps, transport, bytes and outcome, rebuilt from the client's login-class messages.
//!
//! A login starts at the client's first version check, `hc-probe`, `auth-hello` or `sn-register` while it
//! has no login open; it ends `ok` at `sn-register-ack`, `failed` at an auth error or after
//! [`IDLE_NS`] without a login message, and is `incomplete` when the capture ends first.
//! `fallback-probe`s up to [`GRACE_NS`] after the ack still belong to it (step 8 follows
//! REGISTER). An attempt with nothing but a version check (a periodic one) is not a login.
//!
//! Must not: decide message kinds (the classifier does) or keep unbounded state: at most
//! [`MAX_CLIENTS`] open logins and [`MAX_LOGINS`] finished rows, the rest counted in `dropped`.

use crate::classify::Known;
use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// Clients with a login open; further clients are counted and dropped.
pub const MAX_CLIENTS: usize = 20_000;
/// Finished logins kept for the CSV.
pub const MAX_LOGINS: usize = 200_000;
/// Silence after which an unfinished login has timed out (longer than any §8.1 wait).
pub const IDLE_NS: i64 = 60_000_000_000;
/// How long after the ack a `fallback-probe` still belongs to the login (§8.1 step 8).
pub const GRACE_NS: i64 = 10_000_000_000;

/// Login steps, in §8.1 order (the `steps` column lists those seen in this order).
const STEPS: [&str; 6] = [
    "version-check",
    "probes",
    "nat-discovery",
    "auth",
    "sn-session",
    "fallback-probes",
];

/// The step of a login message kind, whether the client sent it, and whether it may
/// start a login.
fn step_of(known: Known) -> Option<(usize, bool, bool)> {
    Some(match known {
        Known::HttpVersionCheck => (0, true, true),
        Known::HttpVersionResponse => (0, false, false),
        Known::HcProbe => (1, true, true),
        Known::HcProbeAck => (1, false, false),
        Known::StunBindingRequest => (2, true, false),
        Known::StunBindingSuccess | Known::StunBindingError => (2, false, false),
        Known::AuthHello => (3, true, true),
        Known::AuthProof => (3, true, false),
        Known::AuthChallenge | Known::Credential | Known::BuddyList => (3, false, false),
        Known::SnRegister => (4, true, true), // a re-registration after losing the SN (§8.5)
        Known::SnRegisterAck => (4, false, false),
        Known::FallbackProbe => (5, true, false),
        Known::FallbackProbeAck => (5, false, false),
        _ => return None,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Incomplete,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Failed, Outcome::Incomplete];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// One login attempt.
#[derive(Clone, Debug)]
pub struct Login {
    pub client: IpAddr,
    pub start: Ts,
    /// The ack or error ending it, else its last message.
    pub end: Ts,
    last: Ts,
    steps: u8,
    /// Transport (6 TCP, 17 UDP) and SN port of the last `hc-probe-ack`.
    probe_ack: Option<(u8, u16)>,
    pub bytes: u64,
    /// `None` while open.
    outcome: Option<Outcome>,
}

impl Login {
    /// Steps seen, `;`-separated in §8.1 order.
    pub fn steps(&self) -> String {
        let seen: Vec<&str> = STEPS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.steps & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect();
        seen.join(";")
    }

    pub fn has_step(&self, step: &str) -> bool {
        STEPS
            .iter()
            .position(|s| *s == step)
            .is_some_and(|i| self.steps & (1 << i) != 0)
    }

    /// `udp` or `tcp`: how the SN answered the probes; empty if no answer was seen.
    pub fn transport(&self) -> &'static str {
        match self.probe_ack {
            Some((6, _)) => "tcp",
            Some((17, _)) => "udp",
            _ => "",
        }
    }

    /// The SN port the TCP fallback reached (§8.1 step 3: the entry's port, 80 or 443).
    pub fn fallback_port(&self) -> Option<u16> {
        match self.probe_ack {
            Some((6, port)) => Some(port),
            _ => None,
        }
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or(Outcome::Incomplete)
    }
}

/// Accumulates logins per client.
#[derive(Default)]
pub struct Logins {
    open: FxHashMap<IpAddr, Login>,
    done: Vec<Login>,
    pub dropped: u64,
}

pub const COLUMNS: &[&str] = &[
    "client",
    "start",
    "end",
    "duration_s",
    "steps",
    "transport",
    "fallback_port",
    "bytes",
    "outcome",
];

impl Logins {
    /// One message: `known` its kind, `detail` the dissector's detail (an error response's
    /// starts `error=`).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        ts: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        proto: u8,
        known: Known,
        detail: &str,
        len: u32,
    ) {
        let Some((step, from_client, starts)) = step_of(known) else {
            return;
        };
        let client = if from_client { src.ip() } else { dst.ip() };
        // Close what this message cannot belong to any more.
        if let Some(l) = self.open.get(&client) {
            let idle = ts.since(l.last) > IDLE_NS;
            let finished = l.outcome.is_some();
            let past_grace = finished && (ts.since(l.end) > GRACE_NS || step != 5);
            if idle || past_grace {
                if let Some(mut l) = self.open.remove(&client) {
                    if l.outcome.is_none() {
                        l.outcome = Some(Outcome::Failed);
                    }
                    self.finish(l);
                }
            }
        }
        if !self.open.contains_key(&client) {
            if !(starts && from_client) {
                return;
            }
            if self.open.len() >= MAX_CLIENTS {
                self.dropped += 1;
                return;
            }
            self.open.insert(
                client,
                Login {
                    client,
                    start: ts,
                    end: ts,
                    last: ts,
                    steps: 0,
                    probe_ack: None,
                    bytes: 0,
                    outcome: None,
                },
            );
        }
        let Some(l) = self.open.get_mut(&client) else {
            return;
        };
        l.steps |= 1 << step;
        l.bytes = l.bytes.saturating_add(u64::from(len));
        l.last = ts;
        if l.outcome.is_some() {
            return; // a fallback probe after the ack: counted, the end stays at the ack
        }
        l.end = ts;
        let error = detail.starts_with("error=");
        match known {
            Known::HcProbeAck if !error => {
                l.probe_ack = Some((proto, src.port()));
            }
            Known::SnRegisterAck if !error => l.outcome = Some(Outcome::Ok),
            // §8.1 step 6: an auth error fails the login at once; an sn-register error
            // (overloaded, expired credential) makes the client try again.
            Known::AuthChallenge | Known::Credential if error => {
                l.outcome = Some(Outcome::Failed);
            }
            _ => {}
        }
    }

    fn finish(&mut self, l: Login) {
        if l.steps == 1 {
            return; // a periodic version check alone is no login
        }
        if self.done.len() >= MAX_LOGINS {
            self.dropped += 1;
        } else {
            self.done.push(l);
        }
    }

    /// All logins by start time; one still open at the end of the capture is `incomplete`.
    pub fn rows(&self) -> Vec<Login> {
        let mut rows: Vec<Login> = self.done.clone();
        rows.extend(self.open.values().filter(|l| l.steps != 1).cloned());
        rows.sort_by_key(|l| (l.start, l.client));
        rows
    }
}

pub fn write_csv<W: Write>(rows: &[Login], mut out: W) -> io::Result<()> {
    out.write_all(&CsvRow::header(COLUMNS))?;
    let mut r = CsvRow::default();
    for l in rows {
        r.clear();
        let dur = l.end.since(l.start) as f64 / 1e9;
        r.ip(l.client)
            .ts9(l.start)
            .ts9(l.end)
            .str(&format!("{dur:.3}"))
            .str(&l.steps())
            .str(l.transport());
        match l.fallback_port() {
            Some(p) => r.uint(u64::from(p)),
            None => r.str(""),
        };
        r.uint(l.bytes).str(l.outcome().name());
        out.write_all(r.finish())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: &str = "10.0.0.5:4000";
    const SN: &str = "203.0.113.1:33033";
    const LS: &str = "198.51.100.10:33034";

    fn feed(l: &mut Logins, s: i64, from: &str, to: &str, proto: u8, kind: &str, detail: &str) {
        l.observe(
            Ts(s * 1_000_000_000),
            from.parse().unwrap(),
            to.parse().unwrap(),
            proto,
            Known::from_name(kind),
            detail,
            100,
        );
    }

    #[test]
    fn tcp_login_ok_and_fallback_probe_after_ack() {
        let mut l = Logins::default();
        feed(
            &mut l,
            0,
            C,
            "198.51.100.80:80",
            6,
            "http-version-check",
            "",
        );
        feed(&mut l, 1, C, "203.0.113.1:443", 6, "hc-probe", "");
        feed(&mut l, 2, "203.0.113.1:443", C, 6, "hc-probe-ack", "");
        feed(&mut l, 3, C, LS, 6, "auth-hello", "");
        feed(&mut l, 4, C, SN, 6, "sn-register", "");
        feed(&mut l, 5, SN, C, 6, "sn-register-ack", "");
        feed(&mut l, 6, C, SN, 17, "fallback-probe", "");
        let rows = l.rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.outcome(), Outcome::Ok);
        assert_eq!((r.transport(), r.fallback_port()), ("tcp", Some(443)));
        assert_eq!(r.end, Ts(5_000_000_000));
        assert_eq!(r.bytes, 700);
        assert_eq!(
            r.steps(),
            "version-check;probes;auth;sn-session;fallback-probes"
        );
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.lines().nth(1).unwrap().ends_with(",tcp,443,700,ok"),
            "{text}"
        );
    }

    #[test]
    fn auth_error_fails_idle_fails_open_is_incomplete() {
        let mut l = Logins::default();
        feed(&mut l, 0, C, LS, 6, "auth-hello", "");
        feed(&mut l, 1, LS, C, 6, "auth-challenge", "error=auth-failed");
        feed(&mut l, 2, C, SN, 17, "hc-probe", "");
        feed(&mut l, 200, C, SN, 17, "hc-probe", "");
        let o: Vec<_> = l.rows().iter().map(|r| r.outcome()).collect();
        assert_eq!(o, [Outcome::Failed, Outcome::Failed, Outcome::Incomplete]);
    }

    #[test]
    fn version_check_alone_and_replies_alone_are_no_login() {
        let mut l = Logins::default();
        feed(
            &mut l,
            0,
            C,
            "198.51.100.80:80",
            6,
            "http-version-check",
            "",
        );
        feed(&mut l, 1000, SN, C, 17, "hc-probe-ack", "");
        feed(&mut l, 1001, C, SN, 17, "stun-binding-request", "");
        assert!(l.rows().is_empty());
    }

    proptest! {
        #[test]
        fn random_sequences_never_panic(seq in proptest::collection::vec((0usize..14, 0i64..100, any::<bool>()), 0..200)) {
            let kinds = ["http-version-check", "hc-probe", "hc-probe-ack", "stun-binding-request",
                "auth-hello", "auth-challenge", "auth-proof", "credential", "sn-register",
                "sn-register-ack", "fallback-probe", "search", "other", "buddy-list"];
            let mut l = Logins::default();
            let mut t = 0;
            for (k, dt, err) in seq {
                t += dt;
                let (a, b) = if k % 2 == 0 { (C, SN) } else { (SN, C) };
                feed(&mut l, t, a, b, 6, kinds[k], if err { "error=x" } else { "" });
            }
            let rows = l.rows();
            prop_assert!(rows.len() <= MAX_LOGINS + MAX_CLIENTS);
            prop_assert!(rows.iter().all(|r| r.end >= r.start));
            write_csv(&rows, Vec::new()).unwrap();
        }
    }
}
