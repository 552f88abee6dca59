//! One direction of a simulated link: a drop-tail queue drained at the link's bandwidth,
//! then a propagation delay with uniform jitter and independent random loss, all from a
//! seeded RNG. Packets leave in the order they entered (jitter never reorders), as on a
//! real access link.

use super::scenario::LinkDef;
use crate::time::Ts;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What happened to a packet offered to a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Arrives at the far end at this time.
    Arrives(Ts),
    /// Lost on the wire (after serialisation).
    Lost,
    /// The queue was full.
    QueueDrop,
}

/// Counters of one pipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    pub queue_drops: u64,
}

pub struct Pipe {
    latency_ns: i64,
    jitter_ns: i64,
    loss: f64,
    /// 0: unlimited.
    bits_per_s: u64,
    queue_ns: i64,
    busy_until: Ts,
    last_arrival: Ts,
    rng: ChaCha8Rng,
    pub stats: PipeStats,
}

fn ms_to_ns(ms: f64) -> i64 {
    (ms * 1e6).round() as i64
}

impl Pipe {
    pub fn new(def: &LinkDef, seed: u64) -> Pipe {
        Pipe {
            latency_ns: ms_to_ns(def.latency_ms),
            jitter_ns: ms_to_ns(def.jitter_ms),
            loss: def.loss,
            bits_per_s: def.kbps.saturating_mul(1000),
            queue_ns: ms_to_ns(def.queue_ms),
            busy_until: Ts(i64::MIN),
            last_arrival: Ts(i64::MIN),
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats: PipeStats::default(),
        }
    }

    /// Offers a packet of `len` bytes at `now`.
    pub fn send(&mut self, now: Ts, len: usize) -> Fate {
        let start = self.busy_until.max(now);
        if start.since(now) > self.queue_ns {
            self.stats.queue_drops += 1;
            return Fate::QueueDrop;
        }
        let tx_ns = match self.bits_per_s {
            0 => 0,
            bps => i64::try_from((len as u128 * 8 * 1_000_000_000) / u128::from(bps))
                .unwrap_or(i64::MAX),
        };
        self.busy_until = start.add_nanos(tx_ns);
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        // Draw both numbers for every packet so one packet's fate never shifts another's.
        let lost = self.loss > 0.0 && self.rng.random_bool(self.loss);
        let jitter = if self.jitter_ns > 0 {
            self.rng.random_range(0..self.jitter_ns)
        } else {
            0
        };
        if lost {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let arrival = self
            .busy_until
            .add_nanos(self.latency_ns + jitter)
            .max(self.last_arrival);
        self.last_arrival = arrival;
        Fate::Arrives(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(latency_ms: f64, jitter_ms: f64, loss: f64, kbps: u64) -> LinkDef {
        LinkDef {
            latency_ms,
            jitter_ms,
            loss,
            kbps,
            queue_ms: 100.0,
            mtu: 1500,
        }
    }

    #[test]
    fn latency_and_bandwidth_add_up() {
        // 1000 bytes at 800 kbit/s: 10 ms on the wire, then 20 ms of propagation.
        let mut p = Pipe::new(&def(20.0, 0.0, 0.0, 800), 1);
        assert_eq!(p.send(Ts(0), 1000), Fate::Arrives(Ts(30_000_000)));
        // The second packet queues behind the first.
        assert_eq!(p.send(Ts(0), 1000), Fate::Arrives(Ts(40_000_000)));
    }

    #[test]
    fn a_full_queue_drops() {
        let mut p = Pipe::new(&def(0.0, 0.0, 0.0, 80), 1); // 100 ms per 1000 bytes
        assert!(matches!(p.send(Ts(0), 1000), Fate::Arrives(_)));
        assert!(matches!(p.send(Ts(0), 1000), Fate::Arrives(_)));
        assert_eq!(p.send(Ts(0), 1000), Fate::QueueDrop);
        assert_eq!(p.stats.queue_drops, 1);
    }

    #[test]
    fn jitter_never_reorders_and_loss_is_seeded() {
        let run = |seed| {
            let mut p = Pipe::new(&def(10.0, 8.0, 0.1, 0), seed);
            (0..2000)
                .map(|i| p.send(Ts(i * 1_000_000), 100))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let arrivals: Vec<Ts> = a
            .iter()
            .filter_map(|f| match f {
                Fate::Arrives(t) => Some(*t),
                _ => None,
            })
            .collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        let lost = a.iter().filter(|f| **f == Fate::Lost).count();
        assert!((120..280).contains(&lost), "{lost}");
    }
}
