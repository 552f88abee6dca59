//! `p2ptrace diff SIM_DIR LAB_DIR`: the simulated and the real-kernel run of one scenario
//! side by side (docs/netlab.md).
//!
//! Each directory's `capture.pcapng` goes through the analyzer (the same [`Analysis`] as
//! `analyze --csv`, into a temporary directory); its `labels.csv` (rows of the first capture
//! point) and `events.csv` are read as they are. Printed per section: message mix by kind,
//! message bytes per class, login time per client, call set-up latency and media path,
//! labels per class, events per kind — each row with both values, the absolute difference
//! (B − A) and the relative one.
//!
//! Must not: write into either directory.

use super::*;
use crate::analysis::Analysis;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub(super) const AFTER_HELP: &str = "Examples:\n  \
    p2ptrace sim no-nat --out sim/ && p2ptrace lab no-nat --netns --out lab/\n  \
    p2ptrace diff sim/ lab/\n\n\
    Each directory needs capture.pcapng; labels.csv and events.csv are used when present.";

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The first run's directory (e.g. `p2ptrace sim --out`).
    #[arg(value_name = "SIM_DIR")]
    pub a: PathBuf,
    /// The second run's directory (e.g. `p2ptrace lab --netns --out`).
    #[arg(value_name = "LAB_DIR")]
    pub b: PathBuf,
}

/// Rows read from one CSV file at most (a report that long is not a side-by-side table).
const MAX_ROWS: usize = 5_000_000;

/// section → key → value.
type Facts = BTreeMap<&'static str, BTreeMap<String, Fact>>;

#[derive(Clone, Debug, PartialEq)]
enum Fact {
    Num(f64),
    Text(String),
}

fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let Ok(mut rdr) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
        return Vec::new();
    };
    let Ok(headers) = rdr.headers().cloned() else {
        return Vec::new();
    };
    rdr.records()
        .take(MAX_ROWS)
        .filter_map(|r| r.ok())
        .map(|r| {
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn add(f: &mut Facts, section: &'static str, key: &str, v: f64) {
    let slot = f
        .entry(section)
        .or_default()
        .entry(key.to_string())
        .or_insert(Fact::Num(0.0));
    if let Fact::Num(x) = slot {
        *x += v;
    }
}

fn num(r: &BTreeMap<String, String>, k: &str) -> Option<f64> {
    r.get(k)?.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn text<'a>(r: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    r.get(k).map_or("", String::as_str)
}

/// Analyzes `dir/capture.pcapng` and reads the ground truth next to it.
fn facts(dir: &Path) -> Result<Facts, String> {
    let capture = dir.join("capture.pcapng");
    if !capture.is_file() {
        return Err(format!("{}: no such capture", capture.display()));
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut analysis = Analysis::create(Some(tmp.path()), true, Vec::new())?;
    let config = PipelineConfig {
        dissect: Some(DissectConfig::default()),
        ..PipelineConfig::default()
    };
    let stats = run_with_progress(std::slice::from_ref(&capture), &config, &mut analysis, true);
    report_input_errors(&stats);
    let done = analysis.finish(&stats);
    if let Some(e) = done.error {
        return Err(e);
    }
    let mut f = Facts::new();
    for m in rows(&tmp.path().join("messages.csv")) {
        let class = text(&m, "class");
        if class.is_empty() {
            continue;
        }
        add(&mut f, "messages by kind", text(&m, "msg_type"), 1.0);
        add(
            &mut f,
            "bytes by class",
            class,
            num(&m, "len").unwrap_or(0.0),
        );
    }
    for l in rows(&tmp.path().join("logins.csv")) {
        let client = text(&l, "client");
        if let Some(d) = num(&l, "duration_s") {
            add(&mut f, "login time (s)", client, d);
        }
        f.entry("login transport")
            .or_default()
            .insert(client.to_string(), Fact::Text(text(&l, "transport").into()));
    }
    for c in rows(&tmp.path().join("calls.csv")) {
        let who = format!("{}→{}", text(&c, "caller"), text(&c, "callee"));
        for (col, what) in [
            ("setup_ringing_s", "invite→ringing"),
            ("setup_accept_s", "invite→accept"),
        ] {
            if let Some(v) = num(&c, col) {
                add(&mut f, "call set-up (s)", &format!("{who} {what}"), v);
            }
        }
        f.entry("media path")
            .or_default()
            .insert(who, Fact::Text(text(&c, "media_path").into()));
    }
    let labels = rows(&dir.join("labels.csv"));
    let point = labels.first().map(|l| text(l, "capture").to_string());
    for l in &labels {
        if Some(text(l, "capture")) == point.as_deref() {
            add(&mut f, "labels by class", text(l, "class"), 1.0);
        }
    }
    for e in rows(&dir.join("events.csv")) {
        add(&mut f, "events by kind", text(&e, "event"), 1.0);
    }
    Ok(f)
}

fn show(v: Option<&Fact>) -> String {
    match v {
        None => "-".into(),
        Some(Fact::Num(x)) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(Fact::Num(x)) => format!("{x:.3}"),
        Some(Fact::Text(t)) if t.is_empty() => "(none)".into(),
        Some(Fact::Text(t)) => t.clone(),
    }
}

/// The side-by-side table.
fn render(a: &Facts, b: &Facts, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36} {:>14} {:>14} {:>12} {:>9}",
        "", a_name, b_name, "diff", "rel"
    );
    let sections: std::collections::BTreeSet<&&str> = a.keys().chain(b.keys()).collect();
    // A fixed, readable order; anything else after it.
    const ORDER: &[&str] = &[
        "messages by kind",
        "bytes by class",
        "login time (s)",
        "login transport",
        "call set-up (s)",
        "media path",
        "labels by class",
        "events by kind",
    ];
    let mut ordered: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|s| sections.contains(s))
        .collect();
    ordered.extend(sections.iter().map(|s| **s).filter(|s| !ORDER.contains(s)));
    let empty = BTreeMap::new();
    for section in ordered {
        let _ = writeln!(out, "{section}");
        let (sa, sb) = (
            a.get(section).unwrap_or(&empty),
            b.get(section).unwrap_or(&empty),
        );
        let keys: std::collections::BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
        for k in keys {
            let (va, vb) = (sa.get(k), sb.get(k));
            let (diff, rel) = match (va, vb) {
                (Some(Fact::Num(x)), Some(Fact::Num(y))) => {
                    let d = y - x;
                    let rel = if *x != 0.0 {
                        format!("{:+.1}%", d / x * 100.0)
                    } else {
                        "-".into()
                    };
                    let d = if d.fract() == 0.0 {
                        format!("{d:+.0}")
                    } else {
                        format!("{d:+.3}")
                    };
                    (d, rel)
                }
                (Some(Fact::Text(x)), Some(Fact::Text(y))) => (
                    if x == y { "same" } else { "differs" }.to_string(),
                    String::new(),
                ),
                _ => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "  {:<34} {:>14} {:>14} {:>12} {:>9}",
                k,
                show(va),
                show(vb),
                diff,
                rel
            );
        }
    }
    out
}

pub(super) fn diff(args: &DiffArgs) -> u8 {
    let a = match facts(&args.a) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    let b = match facts(&args.b) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
    };
    let text = render(&a, &b, &name(&args.a), &name(&args.b));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_absolute_and_relative_differences() {
        let mut a = Facts::new();
        let mut b = Facts::new();
        add(&mut a, "bytes by class", "media", 200.0);
        add(&mut b, "bytes by class", "media", 150.0);
        add(&mut a, "login time (s)", "100.64.0.1", 8.5);
        b.entry("media path")
            .or_default()
            .insert("alice→bob".into(), Fact::Text("relay-udp".into()));
        let t = render(&a, &b, "sim", "lab");
        let media = t.lines().find(|l| l.contains("media ")).unwrap();
        assert!(media.contains("200") && media.contains("150"), "{t}");
        assert!(media.contains("-50") && media.contains("-25.0%"), "{t}");
        let login = t.lines().find(|l| l.contains("100.64.0.1")).unwrap();
        assert!(
            login.contains("8.500") && login.trim_end().ends_with('-'),
            "{t}"
        );
        assert!(t.find("bytes by class") < t.find("login time (s)"), "{t}");
    }
}
