//! Lab scenarios: a TOML description of an overlay on loopback (login server, home server,
//! super nodes, clients), timer overrides, and a timeline of user commands
//! (format: `docs/lab.md`). Built-in scenarios (`basic-call`, `conference`, `promotion`) are embedded from
//! `scenarios/*.toml`.
//!
//! Guarantees: [`Scenario::parse`] either returns a scenario that the lab can run as is —
//! unique node names, commands only for existing nodes, times within `stop_after`, ports
//! that need no root, every count bounded by a `MAX_*` constant — or an error naming the
//! offending field (`client[1].name: …`). Unknown keys are errors, so a typo never silently
//! falls back to a default.
//!
//! Must not: open sockets, start nodes or read anything but the scenario file.

use serde::Deserialize;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// A scenario runs for at most this long ("stops by itself within a few minutes").
pub const MAX_STOP_AFTER: Duration = Duration::from_secs(600);
/// Nodes per scenario (each gets its own loopback address).
pub const MAX_NODES: usize = 256;
/// Timeline steps per scenario.
pub const MAX_STEPS: usize = 1000;
/// Scenario file size limit.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;
/// Node names are user names (auth.rs `MAX_USER_LEN`).
pub const MAX_NAME_LEN: usize = crate::peer::auth::MAX_USER_LEN;
/// Longest timeline command.
pub const MAX_COMMAND_LEN: usize = 256;

/// What a scenario may ask for: the lab's limits (real sockets on loopback, a few minutes,
/// no root) or the simulator's (virtual time and hosts, any port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_nodes: usize,
    pub max_stop_after: Duration,
    pub max_steps: usize,
    /// Lowest port a node may listen on (the lab runs unprivileged).
    pub min_port: u16,
}

impl Limits {
    pub const LAB: Limits = Limits {
        max_nodes: MAX_NODES,
        max_stop_after: MAX_STOP_AFTER,
        max_steps: MAX_STEPS,
        min_port: 1024,
    };
}

/// Built-in scenarios: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "basic-call",
        include_str!("../../scenarios/basic-call.toml"),
    ),
    (
        "conference",
        include_str!("../../scenarios/conference.toml"),
    ),
    ("promotion", include_str!("../../scenarios/promotion.toml")),
];

/// Why a scenario was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The callers name the scenario in front of every error, so `path` is not repeated.
    #[error("{reason}")]
    Read { path: String, reason: String },
    /// TOML syntax, an unknown key or a value of the wrong type (toml's message names the
    /// key and the line).
    #[error("{0}")]
    Toml(String),
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
}

impl ScenarioError {
    pub(crate) fn toml(e: &toml::de::Error, text: Option<&str>) -> ScenarioError {
        ScenarioError::Toml(toml_error_line(e, text))
    }
}

/// A TOML error on one line (toml's own text draws the source over several):
/// `TOML line 3, column 7: …` when `text` is the parsed source, else toml's text with its
/// lines joined (it names the key: "… in `client.password`").
pub fn toml_error_line(e: &toml::de::Error, text: Option<&str>) -> String {
    let one_line = |s: &str| {
        let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines.join(" ")
    };
    match e.span().zip(text) {
        Some((span, text)) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!(
                "TOML line {line}, column {column}: {}",
                one_line(e.message())
            )
        }
        None => format!("TOML {}", one_line(&e.to_string())),
    }
}

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Timer overrides, applied to every node that has the timer (omitted: the PROTOCOL.md §8.9
/// default of the role). The node factory maps each to its role's config field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// Client → SN keepalive period (§8.5, default 60 s).
    pub keepalive_s: Option<u64>,
    /// Client UDP re-poll of the fallback table (§8.5, default 20 s).
    pub udp_repoll_s: Option<u64>,
    /// Client full refresh (§8.5, default 3600 s).
    pub full_refresh_s: Option<u64>,
    /// Client presence query period (§8.5, default 300 s).
    pub presence_query_s: Option<u64>,
    /// Client telemetry to the home server (§10, default: at start only).
    pub telemetry_period_s: Option<u64>,
    /// Voice frame interval (§7.2: 20, 30 or 60 ms; default 30).
    pub frame_ms: Option<u64>,
    /// Credential lifetime issued by the login server (§8.3, default 7 days).
    pub credential_lifetime_s: Option<u64>,
    /// Client uptime before super-node promotion (§8.10, default 3600 s).
    pub promotion_uptime_s: Option<u64>,
}

impl Timers {
    /// Checks ranges; `prefix` is the table name for error messages.
    pub fn validate(&self, prefix: &str) -> Result<(), ScenarioError> {
        let secs = [
            ("keepalive_s", self.keepalive_s),
            ("udp_repoll_s", self.udp_repoll_s),
            ("full_refresh_s", self.full_refresh_s),
            ("presence_query_s", self.presence_query_s),
            ("telemetry_period_s", self.telemetry_period_s),
            ("credential_lifetime_s", self.credential_lifetime_s),
            ("promotion_uptime_s", self.promotion_uptime_s),
        ];
        for (name, v) in secs {
            if let Some(v) = v {
                if v == 0 || v > 365 * 24 * 3600 {
                    return Err(field_err(
                        format!("{prefix}.{name}"),
                        format!("{v}: must be 1 s to 1 year"),
                    ));
                }
            }
        }
        if let Some(ms) = self.frame_ms {
            if ![20, 30, 60].contains(&ms) {
                return Err(field_err(
                    format!("{prefix}.frame_ms"),
                    format!("{ms}: must be 20, 30 or 60 (PROTOCOL.md §7.2)"),
                ));
            }
        }
        Ok(())
    }

    /// Parses one `key=value` override (`p2ptrace peer --timer keepalive_s=5`).
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (key, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}': expected key=value (e.g. keepalive_s=5)"))?;
        let v: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("'{value}': not a whole number"))?;
        let slot = match key.trim() {
            "keepalive_s" => &mut self.keepalive_s,
            "udp_repoll_s" => &mut self.udp_repoll_s,
            "full_refresh_s" => &mut self.full_refresh_s,
            "presence_query_s" => &mut self.presence_query_s,
            "telemetry_period_s" => &mut self.telemetry_period_s,
            "frame_ms" => &mut self.frame_ms,
            "credential_lifetime_s" => &mut self.credential_lifetime_s,
            "promotion_uptime_s" => &mut self.promotion_uptime_s,
            k => return Err(format!("'{k}': unknown timer")),
        };
        *slot = Some(v);
        self.validate("timer").map_err(|e| e.to_string())
    }
}

/// How the login server hashes passwords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashStrength {
    /// `HashParams::DEFAULT` (slow on purpose).
    #[default]
    Default,
    /// `HashParams::FAST`: for labs and tests, where login speed matters more.
    Fast,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginServerDef {
    pub name: String,
    pub port: u16,
    pub hash: HashStrength,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeDef {
    pub name: String,
    pub port: u16,
    pub latest_version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperNodeDef {
    pub name: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDef {
    /// Also the user name.
    pub name: String,
    pub password: String,
    pub buddies: Vec<String>,
    /// `None`: a port derived from the scenario seed and the name (the "install-time
    /// random port", reproducible).
    pub port: Option<u16>,
    pub auto_answer: bool,
    pub version: String,
    /// Declared uplink (conference mixer election, promotion §8.10); `None`: the default.
    pub uplink_kbps: Option<u32>,
}

/// One timeline entry: at `at` after the start, `command` goes to `node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub node: String,
    pub command: String,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub stop_after: Duration,
    /// Node i (login server, home, super nodes, clients, in file order) gets
    /// `network + 1 + i`.
    pub network: Ipv4Addr,
    pub timers: Timers,
    pub login_server: LoginServerDef,
    pub home: HomeDef,
    pub supernodes: Vec<SuperNodeDef>,
    pub clients: Vec<ClientDef>,
    pub steps: Vec<Step>,
}

pub const DEFAULT_NETWORK: Ipv4Addr = Ipv4Addr::new(127, 60, 0, 0);
/// PROTOCOL.md §2.2.
pub const LS_PORT: u16 = 33034;
/// PROTOCOL.md §2.2 (bootstrap SN port).
pub const SN_PORT: u16 = 33033;
/// The home server's HTTP port: §2.2 says 80, which needs root; the lab uses 8080.
pub const HOME_PORT: u16 = 8080;
pub const DEFAULT_VERSION: &str = "1.0.0";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    #[serde(default)]
    description: String,
    seed: Option<u64>,
    stop_after: toml::Value,
    network: Option<String>,
    #[serde(default)]
    timers: Timers,
    login_server: Option<RawLs>,
    home: Option<RawHome>,
    #[serde(default)]
    supernode: Vec<RawSn>,
    #[serde(default)]
    client: Vec<RawClient>,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLs {
    name: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    hash: HashStrength,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHome {
    name: Option<String>,
    port: Option<u16>,
    latest_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSn {
    name: String,
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    password: String,
    #[serde(default)]
    buddies: Vec<String>,
    port: Option<u16>,
    auto_answer: Option<bool>,
    version: Option<String>,
    uplink_kbps: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: toml::Value,
    node: String,
    command: String,
}

impl Scenario {
    /// A built-in name, or else a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(&scenario_text(name_or_path, BUILTIN)?)
    }

    /// Parses and validates a lab scenario.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ScenarioError::toml(&e, Some(text)))?;
        Scenario::from_table(table, &Limits::LAB)
    }

    /// Validates an already parsed TOML table under `limits` (the simulator removes its own
    /// keys first, see `crate::sim::scenario`).
    pub fn from_table(table: toml::Table, limits: &Limits) -> Result<Scenario, ScenarioError> {
        let raw: Raw = table
            .try_into()
            .map_err(|e: toml::de::Error| ScenarioError::toml(&e, None))?;
        let port = |field: &str, p: u16| port(field, p, limits.min_port);
        let stop_after = duration("stop_after", &raw.stop_after)?;
        if stop_after.is_zero() || stop_after > limits.max_stop_after {
            return Err(field_err(
                "stop_after",
                format!(
                    "must be more than 0 and at most {} s",
                    limits.max_stop_after.as_secs()
                ),
            ));
        }
        let network = match &raw.network {
            None => DEFAULT_NETWORK,
            Some(s) => s
                .parse::<Ipv4Addr>()
                .ok()
                .filter(|a| a.is_loopback())
                .ok_or_else(|| {
                    field_err(
                        "network",
                        format!("'{s}': must be an IPv4 address in 127.0.0.0/8"),
                    )
                })?,
        };
        raw.timers.validate("timers")?;

        let mut names = HashSet::new();
        let mut check_name = |field: String, name: &str| -> Result<String, ScenarioError> {
            valid_name(&field, name)?;
            if !names.insert(name.to_string()) {
                return Err(field_err(
                    field,
                    format!("'{name}': another node has this name"),
                ));
            }
            Ok(name.to_string())
        };
        let ls = raw.login_server.unwrap_or_default();
        let login_server = LoginServerDef {
            name: check_name(
                "login_server.name".into(),
                ls.name.as_deref().unwrap_or("ls"),
            )?,
            port: port("login_server.port", ls.port.unwrap_or(LS_PORT))?,
            hash: ls.hash,
        };
        let home = raw.home.unwrap_or_default();
        let home = HomeDef {
            name: check_name("home.name".into(), home.name.as_deref().unwrap_or("home"))?,
            port: port("home.port", home.port.unwrap_or(HOME_PORT))?,
            latest_version: version(
                "home.latest_version",
                home.latest_version.as_deref().unwrap_or(DEFAULT_VERSION),
            )?,
        };
        let total = 2 + raw.supernode.len() + raw.client.len();
        if total > limits.max_nodes {
            return Err(field_err(
                "client",
                format!("{total} nodes: at most {}", limits.max_nodes),
            ));
        }
        let mut supernodes = Vec::new();
        for (i, sn) in raw.supernode.iter().enumerate() {
            supernodes.push(SuperNodeDef {
                name: check_name(format!("supernode[{i}].name"), &sn.name)?,
                port: port(&format!("supernode[{i}].port"), sn.port.unwrap_or(SN_PORT))?,
            });
        }
        let mut clients = Vec::new();
        for (i, c) in raw.client.iter().enumerate() {
            let name = check_name(format!("client[{i}].name"), &c.name)?;
            if c.password.is_empty() || c.password.len() > 256 {
                return Err(field_err(
                    format!("client[{i}].password"),
                    "must be 1 to 256 bytes",
                ));
            }
            let port = match c.port {
                Some(p) => Some(port(&format!("client[{i}].port"), p)?),
                None => None,
            };
            clients.push(ClientDef {
                name,
                password: c.password.clone(),
                buddies: c.buddies.clone(),
                port,
                auto_answer: c.auto_answer.unwrap_or(true),
                version: version(
                    &format!("client[{i}].version"),
                    c.version.as_deref().unwrap_or(DEFAULT_VERSION),
                )?,
                uplink_kbps: match c.uplink_kbps {
                    Some(0) => {
                        return Err(field_err(
                            format!("client[{i}].uplink_kbps"),
                            "must be at least 1",
                        ));
                    }
                    v => v,
                },
            });
        }
        if !clients.is_empty() && supernodes.is_empty() {
            return Err(field_err(
                "supernode",
                "clients need at least one super node to log in to",
            ));
        }
        for (i, c) in clients.iter().enumerate() {
            for (j, b) in c.buddies.iter().enumerate() {
                if !clients.iter().any(|o| o.name == *b) {
                    return Err(field_err(
                        format!("client[{i}].buddies[{j}]"),
                        format!("'{b}': no client has this name"),
                    ));
                }
            }
        }
        if raw.step.len() > limits.max_steps {
            return Err(field_err(
                "step",
                format!("at most {} steps", limits.max_steps),
            ));
        }
        let mut steps = Vec::new();
        for (i, s) in raw.step.iter().enumerate() {
            let at = duration(&format!("step[{i}].at"), &s.at)?;
            if at >= stop_after {
                return Err(field_err(
                    format!("step[{i}].at"),
                    "must be before stop_after",
                ));
            }
            if !names.contains(&s.node) {
                return Err(field_err(
                    format!("step[{i}].node"),
                    format!("'{}': no node has this name", s.node),
                ));
            }
            let words = s.command.split_whitespace().count();
            if words == 0 || s.command.len() > MAX_COMMAND_LEN {
                return Err(field_err(
                    format!("step[{i}].command"),
                    format!("must be 1 to {MAX_COMMAND_LEN} bytes of words"),
                ));
            }
            steps.push(Step {
                at,
                node: s.node.clone(),
                command: s.command.clone(),
            });
        }
        // Run order is time order; equal times keep file order.
        steps.sort_by_key(|s| s.at);
        let scenario = Scenario {
            name: raw.name.unwrap_or_else(|| "unnamed".into()),
            description: raw.description,
            seed: raw.seed.unwrap_or(1),
            stop_after,
            network,
            timers: raw.timers,
            login_server,
            home,
            supernodes,
            clients,
            steps,
        };
        // Every node's address must stay inside 127.0.0.0/8.
        let last = u32::from(network)
            .checked_add(u32::try_from(scenario.node_count()).unwrap_or(u32::MAX))
            .map(Ipv4Addr::from);
        if !last.is_some_and(|a| a.is_loopback() && a != Ipv4Addr::new(127, 255, 255, 255)) {
            return Err(field_err(
                "network",
                format!(
                    "{network}: too close to the end of 127.0.0.0/8 for {} nodes",
                    scenario.node_count()
                ),
            ));
        }
        Ok(scenario)
    }

    pub fn node_count(&self) -> usize {
        2 + self.supernodes.len() + self.clients.len()
    }

    /// The loopback address of the `index`-th node (login server 0, home 1, super nodes,
    /// clients). Validation guarantees it is inside 127.0.0.0/8 for every node.
    pub fn address(&self, index: usize) -> Ipv4Addr {
        let offset = u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1);
        Ipv4Addr::from(u32::from(self.network).saturating_add(offset))
    }

    /// The client's listening port: given, or derived from the seed and its name
    /// (FNV-1a; 20000–59999, so never a well-known or ephemeral-range port).
    pub fn client_port(&self, client: &ClientDef) -> u16 {
        if let Some(p) = client.port {
            return p;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in client.name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        20_000 + u16::try_from(h % 40_000).unwrap_or(0)
    }
}

/// The TOML text of a built-in scenario of `builtins`, or else of the file at
/// `name_or_path` (at most [`MAX_SCENARIO_BYTES`]).
pub fn scenario_text(
    name_or_path: &str,
    builtins: &[(&str, &str)],
) -> Result<String, ScenarioError> {
    if let Some((_, text)) = builtins.iter().find(|(n, _)| *n == name_or_path) {
        return Ok((*text).to_string());
    }
    let read_err = |reason: String| ScenarioError::Read {
        path: name_or_path.to_string(),
        reason,
    };
    let meta = std::fs::metadata(Path::new(name_or_path)).map_err(|e| {
        let names: Vec<&str> = builtins.iter().map(|(n, _)| *n).collect();
        read_err(format!(
            "{e} (not a file, nor a built-in scenario: {})",
            names.join(", ")
        ))
    })?;
    if meta.len() > MAX_SCENARIO_BYTES {
        return Err(read_err(format!("larger than {MAX_SCENARIO_BYTES} bytes")));
    }
    std::fs::read_to_string(name_or_path).map_err(|e| read_err(e.to_string()))
}

fn valid_name(field: &str, name: &str) -> Result<(), ScenarioError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(field_err(
            field,
            format!("'{name}': must be 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 - _ ."),
        ))
    }
}

fn port(field: &str, p: u16, min: u16) -> Result<u16, ScenarioError> {
    if p < min.max(1) {
        let why = if min >= 1024 {
            "ports below 1024 need root; the lab runs unprivileged".to_string()
        } else {
            format!("ports start at {}", min.max(1))
        };
        return Err(field_err(field, format!("{p}: {why}")));
    }
    Ok(p)
}

fn version(field: &str, v: &str) -> Result<String, ScenarioError> {
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(field_err(field, format!("'{v}': not a version like 1.0.0")))
    }
}

/// Parses `"2s"`, `"500ms"`, `"1.5s"`, `"2m"`, `"6h"`, compounds such as `"1h10m"` or
/// `"2m30s"`, or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(v) = t.parse::<f64>() {
        return secs_to_duration(v);
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let v: f64 = rest.get(..num_len)?.parse().ok()?;
        rest = rest.get(num_len..)?;
        let (scale, unit_len) = if rest.starts_with("ms") {
            (1e-3, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += v * scale;
        rest = rest.get(unit_len..)?;
    }
    secs_to_duration(total)
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..=1e7).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

fn duration(field: &str, v: &toml::Value) -> Result<Duration, ScenarioError> {
    let d = match v {
        toml::Value::String(s) => parse_duration(s),
        toml::Value::Integer(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        toml::Value::Float(f) if f.is_finite() && (0.0..=1e7).contains(f) => {
            Some(Duration::from_secs_f64(*f))
        }
        _ => None,
    };
    d.ok_or_else(|| {
        field_err(
            field,
            format!("{v}: not a duration (e.g. \"2s\", \"500ms\", \"1m\" or a number of seconds)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
stop_after = "10s"
[[supernode]]
name = "sn1"
[[client]]
name = "alice"
password = "a"
[[client]]
name = "bob"
password = "b"
buddies = ["alice"]
[[step]]
at = "2s"
node = "alice"
command = "call bob"
"#;

    #[track_caller]
    fn err_field(text: &str) -> String {
        match Scenario::parse(text) {
            Err(ScenarioError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}\n{extra}")
    }

    #[test]
    fn builtin_scenarios_parse() {
        for (name, text) in BUILTIN {
            let s = Scenario::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.name, *name);
            assert!(!s.steps.is_empty());
            assert!(
                s.timers.keepalive_s.is_some(),
                "{name} shortens the keepalive"
            );
            assert!(Scenario::load(name).is_ok());
        }
    }

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.stop_after, Duration::from_secs(10));
        assert_eq!(s.login_server.name, "ls");
        assert_eq!(s.login_server.port, LS_PORT);
        assert_eq!(s.home.port, HOME_PORT);
        assert_eq!(s.supernodes[0].port, SN_PORT);
        assert!(s.clients[0].auto_answer);
        assert_eq!(s.seed, 1);
        assert_eq!(s.address(0), Ipv4Addr::new(127, 60, 0, 1));
        assert_eq!(s.address(4), Ipv4Addr::new(127, 60, 0, 5));
        assert_eq!(s.steps[0].at, Duration::from_secs(2));
    }

    #[test]
    fn client_ports_are_reproducible_and_unprivileged() {
        let s = Scenario::parse(MINIMAL).unwrap();
        let a = s.client_port(&s.clients[0]);
        assert_eq!(a, s.client_port(&s.clients[0]));
        assert!((20_000..60_000).contains(&a));
    }

    #[test]
    fn steps_run_in_time_order() {
        let s = Scenario::parse(&with(
            "[[step]]\nat = \"1s\"\nnode = \"bob\"\ncommand = \"status\"",
        ))
        .unwrap();
        assert_eq!(s.steps[0].node, "bob");
        assert_eq!(s.steps[1].node, "alice");
    }

    #[test]
    fn durations_accept_units_and_numbers() {
        assert_eq!(parse_duration("6h"), Some(Duration::from_secs(21600)));
        assert_eq!(parse_duration("1h10m"), Some(Duration::from_secs(4200)));
        assert_eq!(parse_duration("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse_duration("1h 10m"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("NaNs"), None);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: &[(&str, &str)] = &[
            (
                &MINIMAL.replace("stop_after = \"10s\"", "stop_after = \"ten\""),
                "stop_after",
            ),
            (
                &MINIMAL.replace("stop_after = \"10s\"", "stop_after = \"20m\""),
                "stop_after",
            ),
            (
                &MINIMAL.replace("at = \"2s\"", "at = \"11s\""),
                "step[0].at",
            ),
            (&MINIMAL.replace("at = \"2s\"", "at = \"2x\""), "step[0].at"),
            (
                &MINIMAL.replace("node = \"alice\"", "node = \"zed\""),
                "step[0].node",
            ),
            (
                &MINIMAL.replace("command = \"call bob\"", "command = \"  \""),
                "step[0].command",
            ),
            (
                &MINIMAL.replace("name = \"bob\"", "name = \"alice\""),
                "client[1].name",
            ),
            (
                &MINIMAL.replace("name = \"bob\"", "name = \"b o b\""),
                "client[1].name",
            ),
            (
                &MINIMAL.replace("password = \"b\"", "password = \"\""),
                "client[1].password",
            ),
            (
                &MINIMAL.replace("buddies = [\"alice\"]", "buddies = [\"carol\"]"),
                "client[1].buddies[0]",
            ),
            (
                &MINIMAL.replace("name = \"sn1\"", "name = \"sn1\"\nport = 80"),
                "supernode[0].port",
            ),
            (&format!("network = \"10.0.0.0\"\n{MINIMAL}"), "network"),
            (
                &format!("network = \"127.255.255.253\"\n{MINIMAL}"),
                "network",
            ),
            (&with("[timers]\nkeepalive_s = 0"), "timers.keepalive_s"),
            (&with("[timers]\nframe_ms = 25"), "timers.frame_ms"),
            (
                &with("[timers]\npromotion_uptime_s = 0"),
                "timers.promotion_uptime_s",
            ),
            (
                &with("[[client]]\nname = \"carol\"\npassword = \"c\"\nuplink_kbps = 0"),
                "client[2].uplink_kbps",
            ),
            (
                &with("[home]\nlatest_version = \"\""),
                "home.latest_version",
            ),
            // Names are checked login server, home, super nodes, clients: the later one is
            // named.
            (&with("[login_server]\nname = \"alice\""), "client[0].name"),
            (&with("[login_server]\nname = \"\""), "login_server.name"),
        ];
        for (text, field) in cases {
            assert_eq!(err_field(text), *field, "in:\n{text}");
        }
        let no_sn = MINIMAL.replace("[[supernode]]\nname = \"sn1\"\n", "");
        assert_eq!(err_field(&no_sn), "supernode");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = Scenario::parse(&with("[timers]\nkeepalive = 5")).unwrap_err();
        assert!(e.to_string().contains("keepalive"), "{e}");
        let e = Scenario::parse(&with("[[client]]\nname = \"c\"\npassword = 5")).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let e = Scenario::parse("seed = 1").unwrap_err();
        assert!(e.to_string().contains("stop_after"), "{e}");
        let e = Scenario::parse("seed = 1\nstop_after = 5s\n").unwrap_err();
        assert!(e.to_string().starts_with("TOML line 2, column 14: "), "{e}");
        // Every error is one line: the CLI prints it after "p2ptrace: error: ".
        let e = Scenario::parse(&with("[[client]]\nname = \"c\"\npassword = 5")).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn timer_overrides_parse_from_key_value() {
        let mut t = Timers::default();
        t.set("keepalive_s=5").unwrap();
        assert_eq!(t.keepalive_s, Some(5));
        t.set("promotion_uptime_s=30").unwrap();
        assert_eq!(t.promotion_uptime_s, Some(30));
        assert!(t.set("frame_ms=7").is_err());
        assert!(t.set("nope=1").is_err());
        assert!(t.set("keepalive_s").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,400}") {
            let _ = Scenario::parse(&text);
            let _ = parse_duration(&text);
        }

        #[test]
        fn millisecond_durations_round_trip(ms in 0u64..10_000_000) {
            proptest::prop_assert_eq!(
                parse_duration(&format!("{ms}ms")),
                Some(Duration::from_millis(ms))
            );
        }
    }

    #[test]
    fn loading_a_missing_file_lists_the_builtins() {
        let e = Scenario::load("/nonexistent/x.toml").unwrap_err();
        assert!(e.to_string().contains("basic-call"), "{e}");
    }
}
