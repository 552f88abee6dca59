//! Simulator scenarios: the lab's TOML format (`docs/lab.md`: login server, home, super
//! nodes, clients, timers, timeline) plus what only a simulated network has
//! (`docs/sim.md`): per-node `link`, `nat`, `firewall` and `start`, a `[sim]` table
//! (capture points, start time, IPv6, default link) and `[[crowd]]` tables that expand into
//! many generated nodes (and random calls among them) for the large scenarios.
//!
//! How: the simulator's keys are taken out of the TOML table, crowds are expanded into
//! ordinary `[[client]]` / `[[supernode]]` entries and steps, and the rest is validated by
//! the lab's own parser under the simulator's limits ([`LIMITS`]) — one format, one
//! validator.
//!
//! Must not: build or run anything.

use super::nat::NatKind;
use crate::peer::scenario::{Limits, Scenario, ScenarioError, parse_duration, scenario_text};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use toml::{Table, Value};

/// Nodes per simulated scenario, crowds included.
pub const MAX_SIM_NODES: usize = 20_000;
/// Longest simulated run.
pub const MAX_SIM_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_SIM_STEPS: usize = 100_000;
/// Capture points per run (a label records per point whether it was written).
pub const MAX_CAPTURE_POINTS: usize = 64;

pub const LIMITS: Limits = Limits {
    max_nodes: MAX_SIM_NODES,
    max_stop_after: MAX_SIM_DURATION,
    max_steps: MAX_SIM_STEPS,
    min_port: 1,
};

/// 2026-01-01T00:00:00Z: the simulated clock's default origin.
pub const DEFAULT_START_TIME: u64 = 1_767_225_600;
/// The home server's port in the simulator: PROTOCOL.md §2.2 says 80 (no root needed here).
pub const SIM_HOME_PORT: u16 = 80;

/// Built-in simulator scenarios: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("no-nat", include_str!("../../scenarios/sim/no-nat.toml")),
    ("one-nat", include_str!("../../scenarios/sim/one-nat.toml")),
    (
        "both-nat-udp-blocked",
        include_str!("../../scenarios/sim/both-nat-udp-blocked.toml"),
    ),
    (
        "conference",
        include_str!("../../scenarios/sim/conference.toml"),
    ),
    (
        "phone-home",
        include_str!("../../scenarios/sim/phone-home.toml"),
    ),
    ("churn", include_str!("../../scenarios/sim/churn.toml")),
    ("large", include_str!("../../scenarios/sim/large.toml")),
];

/// A link's behaviour, one value for both directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkDef {
    pub latency_ms: f64,
    /// Uniform extra delay in `[0, jitter_ms)` (packets are never reordered).
    pub jitter_ms: f64,
    /// Probability that a packet is lost, 0 to 1.
    pub loss: f64,
    /// Bandwidth; 0: unlimited.
    pub kbps: u64,
    /// Drop-tail queue: a packet that would wait longer is dropped.
    pub queue_ms: f64,
    /// IP MTU of the host (sets the TCP MSS).
    pub mtu: u16,
}

impl Default for LinkDef {
    fn default() -> Self {
        LinkDef {
            latency_ms: 20.0,
            jitter_ms: 2.0,
            loss: 0.0,
            kbps: 0,
            queue_ms: 200.0,
            mtu: 1500,
        }
    }
}

/// A node's place in the network.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct NetDef {
    pub link: LinkDef,
    /// Behind its own NAT box of this kind; `None`: a public address.
    pub nat: Option<NatKind>,
    /// A firewall at its gateway drops all UDP both ways.
    pub udp_blocked: bool,
    /// Its NAT forgets an idle UDP mapping after this long (`None`: the NAT's default,
    /// 120 s in the simulator, the kernel's 30 s / 120 s in the lab).
    pub nat_udp_timeout: Option<Duration>,
    /// Joins this long after the start (clients only).
    pub start: Duration,
}

/// Command-line overrides of a scenario's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    pub capture_at: Option<Vec<String>>,
}

/// A validated simulator scenario.
#[derive(Clone, Debug)]
pub struct SimScenario {
    /// The overlay, crowds expanded (node order: login server, home, super nodes, clients).
    pub base: Scenario,
    /// Per node, in the same order.
    pub net: Vec<NetDef>,
    /// Capture point names: `core`, a node name, `nat:NODE`, or `all`.
    pub capture_at: Vec<String>,
    /// Unix seconds of simulated time zero.
    pub start_time: u64,
    /// Every host on IPv6 (no NAT then).
    pub ipv6: bool,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

fn duration_of(field: &str, v: &Value) -> Result<Duration, ScenarioError> {
    let d = match v {
        Value::String(s) => parse_duration(s),
        Value::Integer(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        Value::Float(f) if f.is_finite() && *f >= 0.0 && *f <= 1e7 => {
            Some(Duration::from_secs_f64(*f))
        }
        _ => None,
    };
    d.ok_or_else(|| err(field, format!("{v}: not a duration (e.g. \"2s\", \"10m\")")))
}

fn number(field: &str, v: &Value, lo: f64, hi: f64) -> Result<f64, ScenarioError> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        _ => return Err(err(field, format!("{v}: not a number"))),
    };
    if !(x.is_finite() && x >= lo && x <= hi) {
        return Err(err(field, format!("{x}: must be {lo} to {hi}")));
    }
    Ok(x)
}

fn link_def(field: &str, v: &Value, base: LinkDef) -> Result<LinkDef, ScenarioError> {
    let Value::Table(t) = v else {
        return Err(err(
            field,
            "must be a table like { latency_ms = 20, loss = 0.01 }",
        ));
    };
    let mut l = base;
    for (k, v) in t {
        let f = format!("{field}.{k}");
        match k.as_str() {
            "latency_ms" => l.latency_ms = number(&f, v, 0.0, 10_000.0)?,
            "jitter_ms" => l.jitter_ms = number(&f, v, 0.0, 10_000.0)?,
            "loss" => l.loss = number(&f, v, 0.0, 1.0)?,
            "kbps" => l.kbps = number(&f, v, 0.0, 100_000_000.0)? as u64,
            "queue_ms" => l.queue_ms = number(&f, v, 1.0, 60_000.0)?,
            "mtu" => l.mtu = number(&f, v, 576.0, 9000.0)? as u16,
            _ => {
                return Err(err(
                    f,
                    "unknown key (latency_ms, jitter_ms, loss, kbps, queue_ms, mtu)",
                ));
            }
        }
    }
    Ok(l)
}

/// Takes the simulator's keys out of one node table.
fn take_net(field: &str, t: &mut Table, default_link: LinkDef) -> Result<NetDef, ScenarioError> {
    let mut n = NetDef {
        link: default_link,
        ..NetDef::default()
    };
    if let Some(v) = t.remove("link") {
        n.link = link_def(&format!("{field}.link"), &v, default_link)?;
    }
    if let Some(v) = t.remove("nat") {
        let s = v
            .as_str()
            .ok_or_else(|| err(format!("{field}.nat"), "must be a string"))?;
        n.nat = Some(
            s.parse::<NatKind>()
                .map_err(|e| err(format!("{field}.nat"), e))?,
        );
    }
    if let Some(v) = t.remove("firewall") {
        n.udp_blocked = match v.as_str() {
            Some("udp-blocked") => true,
            Some("none") => false,
            _ => {
                return Err(err(
                    format!("{field}.firewall"),
                    format!("{v}: must be \"udp-blocked\" or \"none\""),
                ));
            }
        };
    }
    if let Some(v) = t.remove("nat_udp_timeout") {
        let f = format!("{field}.nat_udp_timeout");
        let d = duration_of(&f, &v)?;
        if n.nat.is_none() {
            return Err(err(f, "needs a `nat` on the same node"));
        }
        if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) || d.subsec_nanos() != 0 {
            return Err(err(
                f,
                format!("{d:?}: must be whole seconds, 1 s to 1 day"),
            ));
        }
        n.nat_udp_timeout = Some(d);
    }
    if let Some(v) = t.remove("start") {
        n.start = duration_of(&format!("{field}.start"), &v)?;
    }
    Ok(n)
}

fn str_of<'a>(t: &'a Table, key: &str, field: &str) -> Result<Option<&'a str>, ScenarioError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(err(
            format!("{field}.{key}"),
            format!("{v}: must be a string"),
        )),
    }
}

/// A crowd's generated nodes and steps.
struct Crowd {
    supernodes: Vec<(Table, NetDef)>,
    clients: Vec<(Table, NetDef)>,
    steps: Vec<Table>,
}

fn expand_crowd(
    field: &str,
    c: &Table,
    default_link: LinkDef,
    stop_after: Duration,
    rng: &mut ChaCha8Rng,
) -> Result<Crowd, ScenarioError> {
    const KEYS: &[&str] = &[
        "role",
        "prefix",
        "count",
        "password",
        "start_spread",
        "nat",
        "nat_share",
        "udp_blocked_share",
        "link",
        "buddies",
        "calls",
        "call_length",
        "uplink_kbps",
    ];
    if let Some(k) = c.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(
            format!("{field}.{k}"),
            format!("unknown key ({})", KEYS.join(", ")),
        ));
    }
    let role = str_of(c, "role", field)?.unwrap_or("client");
    let prefix = str_of(c, "prefix", field)?
        .ok_or_else(|| err(format!("{field}.prefix"), "required"))?
        .to_string();
    let count = match c.get("count") {
        Some(v) => number(&format!("{field}.count"), v, 1.0, MAX_SIM_NODES as f64)? as usize,
        None => return Err(err(format!("{field}.count"), "required")),
    };
    let get_f = |k: &str, lo, hi, d| -> Result<f64, ScenarioError> {
        c.get(k)
            .map_or(Ok(d), |v| number(&format!("{field}.{k}"), v, lo, hi))
    };
    let link = match c.get("link") {
        Some(v) => link_def(&format!("{field}.link"), v, default_link)?,
        None => default_link,
    };
    let nat = match str_of(c, "nat", field)? {
        Some(s) => Some(
            s.parse::<NatKind>()
                .map_err(|e| err(format!("{field}.nat"), e))?,
        ),
        None => None,
    };
    let nat_share = get_f("nat_share", 0.0, 1.0, 1.0)?;
    let blocked_share = get_f("udp_blocked_share", 0.0, 1.0, 0.0)?;
    let spread = match c.get("start_spread") {
        Some(v) => duration_of(&format!("{field}.start_spread"), v)?,
        None => Duration::ZERO,
    };
    // A spread beyond stop_after is fine (`--duration` may cut a run short): members
    // due after the end never join.
    if spread > MAX_SIM_DURATION {
        return Err(err(
            format!("{field}.start_spread"),
            format!("at most {} s", MAX_SIM_DURATION.as_secs()),
        ));
    }
    let password = str_of(c, "password", field)?.unwrap_or("crowd-secret");
    let buddies = get_f("buddies", 0.0, 64.0, 0.0)? as usize;
    let calls = get_f("calls", 0.0, 10_000.0, 0.0)? as usize;
    let call_length = match c.get("call_length") {
        Some(v) => duration_of(&format!("{field}.call_length"), v)?,
        None => Duration::from_secs(60),
    };
    let uplink = match c.get("uplink_kbps") {
        Some(v) => Some(number(&format!("{field}.uplink_kbps"), v, 1.0, 10_000_000.0)? as i64),
        None => None,
    };
    let width = count.to_string().len().max(3);
    let name = |i: usize| format!("{prefix}{i:0width$}");
    let mut out = Crowd {
        supernodes: Vec::new(),
        clients: Vec::new(),
        steps: Vec::new(),
    };
    let mut starts = Vec::with_capacity(count);
    for i in 0..count {
        let mut t = Table::new();
        t.insert("name".into(), Value::String(name(i)));
        let start = if spread.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.random_range(0..spread.as_nanos() as u64))
        };
        starts.push(start);
        let mut net = NetDef {
            link,
            start,
            ..NetDef::default()
        };
        match role {
            "supernode" => out.supernodes.push((t, net)),
            "client" => {
                t.insert("password".into(), Value::String(password.to_string()));
                let b: Vec<Value> = (1..=buddies.min(count.saturating_sub(1)))
                    .map(|k| Value::String(name((i + k) % count)))
                    .collect();
                t.insert("buddies".into(), Value::Array(b));
                if let Some(u) = uplink {
                    t.insert("uplink_kbps".into(), Value::Integer(u));
                }
                if nat.is_some() && rng.random_bool(nat_share) {
                    net.nat = nat;
                }
                net.udp_blocked = rng.random_bool(blocked_share);
                out.clients.push((t, net));
            }
            other => {
                return Err(err(
                    format!("{field}.role"),
                    format!("'{other}': must be \"client\" or \"supernode\""),
                ));
            }
        }
    }
    if calls > 0 && (role != "client" || count < 2) {
        return Err(err(format!("{field}.calls"), "needs a crowd of 2+ clients"));
    }
    // Random calls among members who have joined, each hung up after call_length.
    for _ in 0..calls {
        let a = rng.random_range(0..count);
        let b = (a + rng.random_range(1..count)) % count;
        let earliest = starts[a].max(starts[b]) + Duration::from_secs(30);
        let Some(room) = stop_after.checked_sub(earliest + call_length + Duration::from_secs(5))
        else {
            continue;
        };
        let at = earliest + Duration::from_nanos(rng.random_range(0..=room.as_nanos() as u64));
        for (when, cmd) in [
            (at, format!("call {}", name(b))),
            (at + call_length, "hangup".into()),
        ] {
            let mut s = Table::new();
            s.insert("at".into(), Value::Float(when.as_secs_f64()));
            s.insert("node".into(), Value::String(name(a)));
            s.insert("command".into(), Value::String(cmd));
            out.steps.push(s);
        }
    }
    Ok(out)
}

fn tables_mut<'a>(root: &'a mut Table, key: &str) -> Vec<&'a mut Table> {
    match root.get_mut(key) {
        Some(Value::Array(a)) => a
            .iter_mut()
            .filter_map(|v| match v {
                Value::Table(t) => Some(t),
                _ => None,
            })
            .collect(),
        Some(Value::Table(t)) => vec![t],
        _ => Vec::new(),
    }
}

impl SimScenario {
    /// A built-in name, or else a path to a TOML file.
    pub fn load(name_or_path: &str, o: &Overrides) -> Result<SimScenario, ScenarioError> {
        SimScenario::parse_with(&scenario_text(name_or_path, BUILTIN)?, o)
    }

    pub fn parse(text: &str) -> Result<SimScenario, ScenarioError> {
        SimScenario::parse_with(text, &Overrides::default())
    }

    /// Parses with command-line overrides applied before validation (a new seed also
    /// re-draws the crowds).
    pub fn parse_with(text: &str, o: &Overrides) -> Result<SimScenario, ScenarioError> {
        let mut root: Table =
            toml::from_str(text).map_err(|e| ScenarioError::toml(&e, Some(text)))?;
        if let Some(seed) = o.seed {
            let seed = i64::try_from(seed).map_err(|_| err("--seed", "at most 2^63-1"))?;
            root.insert("seed".into(), Value::Integer(seed));
        }
        if let Some(d) = o.duration {
            root.insert("stop_after".into(), Value::Float(d.as_secs_f64()));
        }
        let mut capture_at = vec!["core".to_string()];
        let mut start_time = DEFAULT_START_TIME;
        let mut ipv6 = false;
        let mut default_link = LinkDef::default();
        if let Some(v) = root.remove("sim") {
            let Value::Table(t) = v else {
                return Err(err("sim", "must be a table"));
            };
            for (k, v) in &t {
                let f = format!("sim.{k}");
                match k.as_str() {
                    "capture_at" => {
                        let Value::Array(a) = v else {
                            return Err(err(f, "must be a list of names"));
                        };
                        capture_at = a
                            .iter()
                            .map(|v| v.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| err(&f, "must be a list of names"))?;
                    }
                    "start_time" => {
                        start_time = number(&f, v, 0.0, 4_000_000_000.0)? as u64;
                    }
                    "ipv6" => {
                        ipv6 = v
                            .as_bool()
                            .ok_or_else(|| err(&f, "must be true or false"))?
                    }
                    "link" => default_link = link_def(&f, v, default_link)?,
                    _ => return Err(err(f, "unknown key (capture_at, start_time, ipv6, link)")),
                }
            }
        }
        // The home server listens on port 80 unless told otherwise (§2.2).
        let home = root
            .entry("home")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(h) = home {
            h.entry("port")
                .or_insert(Value::Integer(i64::from(SIM_HOME_PORT)));
        }
        let stop_after = match root.get("stop_after") {
            Some(v) => duration_of("stop_after", v)?,
            None => return Err(err("stop_after", "required")),
        };
        let seed = root
            .get("seed")
            .and_then(Value::as_integer)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(1);

        let ls_net = match root.get_mut("login_server") {
            Some(Value::Table(t)) => take_net("login_server", t, default_link)?,
            _ => NetDef {
                link: default_link,
                ..NetDef::default()
            },
        };
        let home_net = match root.get_mut("home") {
            Some(Value::Table(t)) => take_net("home", t, default_link)?,
            _ => NetDef {
                link: default_link,
                ..NetDef::default()
            },
        };
        let mut sn_nets = Vec::new();
        for (i, t) in tables_mut(&mut root, "supernode").into_iter().enumerate() {
            sn_nets.push(take_net(&format!("supernode[{i}]"), t, default_link)?);
        }
        let mut client_nets = Vec::new();
        for (i, t) in tables_mut(&mut root, "client").into_iter().enumerate() {
            client_nets.push(take_net(&format!("client[{i}]"), t, default_link)?);
        }
        // Crowds go after the listed nodes of their role.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c20d);
        let crowds = match root.remove("crowd") {
            None => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(err("crowd", "must be [[crowd]] tables")),
        };
        for (i, c) in crowds.iter().enumerate() {
            let Value::Table(c) = c else {
                return Err(err(format!("crowd[{i}]"), "must be a table"));
            };
            let crowd = expand_crowd(
                &format!("crowd[{i}]"),
                c,
                default_link,
                stop_after,
                &mut rng,
            )?;
            let total =
                sn_nets.len() + client_nets.len() + crowd.supernodes.len() + crowd.clients.len();
            if total > MAX_SIM_NODES {
                return Err(err(
                    format!("crowd[{i}].count"),
                    format!("{total} nodes: at most {MAX_SIM_NODES}"),
                ));
            }
            for (key, nodes, nets) in [
                ("supernode", crowd.supernodes, &mut sn_nets),
                ("client", crowd.clients, &mut client_nets),
            ] {
                if nodes.is_empty() {
                    continue;
                }
                let arr = root.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(arr) = arr else {
                    return Err(err(key, "must be [[...]] tables"));
                };
                for (t, n) in nodes {
                    arr.push(Value::Table(t));
                    nets.push(n);
                }
            }
            if !crowd.steps.is_empty() {
                let arr = root
                    .entry("step")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(arr) = arr {
                    arr.extend(crowd.steps.into_iter().map(Value::Table));
                }
            }
        }
        let base = Scenario::from_table(root, &LIMITS)?;
        let mut net = vec![ls_net, home_net];
        net.extend(sn_nets);
        net.extend(client_nets);
        for (i, n) in net.iter().enumerate() {
            let name = node_name(&base, i);
            if n.nat.is_some() && ipv6 {
                return Err(err(
                    format!("{name}.nat"),
                    "no NAT on IPv6 (sim.ipv6 = true)",
                ));
            }
            if i < 2 + base.supernodes.len() && (n.nat.is_some() || !n.start.is_zero()) {
                return Err(err(
                    name.to_string(),
                    "servers and super nodes are public and start at once (nat/start are for clients)",
                ));
            }
        }
        if let Some(c) = &o.capture_at {
            capture_at = c.clone();
        }
        if capture_at.is_empty() || capture_at.len() > MAX_CAPTURE_POINTS {
            return Err(err(
                "sim.capture_at",
                format!("1 to {MAX_CAPTURE_POINTS} capture points"),
            ));
        }
        Ok(SimScenario {
            base,
            net,
            capture_at,
            start_time,
            ipv6,
        })
    }

    /// Nodes in plan order.
    pub fn node_count(&self) -> usize {
        self.base.node_count()
    }
}

/// Name of node `i` in plan order (login server, home, super nodes, clients).
pub fn node_name(s: &Scenario, i: usize) -> &str {
    let sns = s.supernodes.len();
    match i {
        0 => &s.login_server.name,
        1 => &s.home.name,
        i if i < 2 + sns => s.supernodes.get(i - 2).map_or("", |n| &n.name),
        i => s.clients.get(i - 2 - sns).map_or("", |n| &n.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
stop_after = "60s"
[[supernode]]
name = "sn1"
[[client]]
name = "alice"
password = "a"
nat = "symmetric"
link = { latency_ms = 50, loss = 0.01 }
[[client]]
name = "bob"
password = "b"
firewall = "udp-blocked"
start = "5s"
"#;

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN {
            let s = SimScenario::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.base.name, *name);
            assert_eq!(s.net.len(), s.node_count());
        }
    }

    #[test]
    fn node_keys_become_net_defs() {
        let s = SimScenario::parse(BASE).unwrap();
        assert_eq!(s.base.home.port, SIM_HOME_PORT);
        let alice = &s.net[3];
        assert_eq!(alice.nat, Some(NatKind::Symmetric));
        assert_eq!(alice.link.latency_ms, 50.0);
        assert_eq!(alice.link.loss, 0.01);
        assert_eq!(alice.link.mtu, 1500);
        let bob = &s.net[4];
        assert!(bob.udp_blocked && bob.nat.is_none());
        assert_eq!(bob.start, Duration::from_secs(5));
        assert_eq!(s.capture_at, vec!["core"]);
    }

    #[test]
    fn crowds_expand_reproducibly() {
        let text = format!(
            "{BASE}\n[[crowd]]\nprefix = \"u\"\ncount = 50\nstart_spread = \"20s\"\nnat = \"port-restricted\"\nnat_share = 0.5\ncalls = 5\ncall_length = \"10s\"\nbuddies = 2\n"
        );
        let a = SimScenario::parse(&text).unwrap();
        let b = SimScenario::parse(&text).unwrap();
        assert_eq!(a.base.clients.len(), 52);
        assert_eq!(a.base.clients[2].name, "u000");
        assert_eq!(a.base.clients[2].buddies, vec!["u001", "u002"]);
        assert_eq!(a.base.steps, b.base.steps);
        assert_eq!(a.net, b.net);
        assert!(a.base.steps.len() <= 10 && a.base.steps.len() % 2 == 0);
        let natted = a.net.iter().filter(|n| n.nat.is_some()).count();
        assert!(natted > 10 && natted < 45, "{natted}");
    }

    #[test]
    fn bad_sim_keys_are_named() {
        let e = |extra: &str| {
            SimScenario::parse(&format!("{BASE}\n{extra}"))
                .unwrap_err()
                .to_string()
        };
        assert!(e("[sim]\nbogus = 1").contains("sim.bogus"));
        assert!(e("[sim]\ncapture_at = []").contains("sim.capture_at"));
        let bad_nat = BASE.replace("symmetric", "weird");
        assert!(
            SimScenario::parse(&bad_nat)
                .unwrap_err()
                .to_string()
                .contains("client[0].nat")
        );
        let timeout = |t: &str| {
            BASE.replace(
                "nat = \"symmetric\"",
                &format!("nat = \"symmetric\"\nnat_udp_timeout = {t}"),
            )
        };
        let ok = SimScenario::parse(&timeout("\"5s\"")).unwrap();
        assert_eq!(ok.net[3].nat_udp_timeout, Some(Duration::from_secs(5)));
        for bad in ["\"500ms\"", "\"2d\"", "\"x\""] {
            let msg = SimScenario::parse(&timeout(bad)).unwrap_err().to_string();
            assert!(msg.contains("client[0].nat_udp_timeout"), "{bad}: {msg}");
        }
        let no_nat = BASE.replace("start = \"5s\"", "start = \"5s\"\nnat_udp_timeout = \"5s\"");
        let msg = SimScenario::parse(&no_nat).unwrap_err().to_string();
        assert!(
            msg.contains("client[1].nat_udp_timeout") && msg.contains("nat"),
            "{msg}"
        );
        let bad_loss = BASE.replace("loss = 0.01", "loss = 2");
        assert!(
            SimScenario::parse(&bad_loss)
                .unwrap_err()
                .to_string()
                .contains("client[0].link.loss")
        );
        assert!(e("[[crowd]]\nprefix = \"x\"").contains("crowd[0].count"));
        assert!(
            e("[[crowd]]\nprefix = \"x\"\ncount = 3\nrole = \"admin\"").contains("crowd[0].role")
        );
        let sn_nat = BASE.replace("name = \"sn1\"", "name = \"sn1\"\nnat = \"full-cone\"");
        assert!(SimScenario::parse(&sn_nat).is_err());
        // The lab still refuses the simulator's keys.
        assert!(Scenario::parse(BASE).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(extra in "\\PC{0,200}") {
            let _ = SimScenario::parse(&extra);
            let _ = SimScenario::parse(&format!("{BASE}\n{extra}"));
        }
    }

    #[test]
    fn long_runs_and_low_ports_are_fine_in_the_simulator() {
        let text = BASE
            .replace("60s", "21600")
            .replace("name = \"sn1\"", "name = \"sn1\"\nport = 443");
        let s = SimScenario::parse(&text).unwrap();
        assert_eq!(s.base.stop_after, Duration::from_secs(21600));
        assert_eq!(s.base.supernodes[0].port, 443);
    }
}
