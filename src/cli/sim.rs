//! `p2ptrace sim`: runs a simulator scenario and prints what it did.

use super::SimArgs;
use crate::sim::run::{SimError, run};
use crate::sim::scenario::{Overrides, SimScenario};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub fn sim(args: &SimArgs) -> u8 {
    let overrides = Overrides {
        seed: args.seed,
        duration: args.duration,
        capture_at: (!args.capture_at.is_empty()).then(|| args.capture_at.clone()),
    };
    let scenario = match SimScenario::load(&args.scenario, &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("p2ptrace: error: scenario {}: {e}", args.scenario);
            return 2;
        }
    };
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(1000);
        b.set_style(
            ProgressStyle::with_template("sim {msg} [{bar:40}] {percent}% ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(scenario.base.name.clone());
        b
    });
    let result = run(&scenario, &args.out, |f| {
        if let Some(b) = &bar {
            b.set_position((f * 1000.0) as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(report) => {
            print!("{}", report.render());
            0
        }
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            match e {
                SimError::CapturePoint(_) => 2,
                _ => 1,
            }
        }
    }
}
