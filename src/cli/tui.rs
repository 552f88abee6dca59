//! `p2ptrace tui FILE`: checks the input and the terminal before touching the screen (so a
//! bad input is one error line and the terminal is never left in raw mode), then runs the
//! terminal UI (see [`crate::tui`]).

use super::*;

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Capture file (pcap, pcapng, optionally gzip-compressed).
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// A home endpoint besides those learned from the traffic: ADDR, ADDR:PORT, CIDR or a
    /// host name pattern such as `*.example.com` (repeatable).
    #[arg(long, value_name = "ADDR|CIDR|NAME", value_parser = crate::classify::HomeSpec::parse)]
    pub home: Vec<crate::classify::HomeSpec>,
    /// Letters instead of colours for traffic classes (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
}

pub(super) fn tui(args: &TuiArgs) -> u8 {
    if let Err(e) = crate::capture::CaptureReader::open(&args.input) {
        eprintln!("p2ptrace: error: {e}");
        return 1;
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!("p2ptrace: error: tui needs a terminal (use `p2ptrace analyze` for text)");
        return 1;
    }
    let color = crate::tui::color_wanted(args.no_color);
    match crate::tui::run_file(args.input.clone(), args.home.clone(), color) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("p2ptrace: error: terminal: {e}");
            1
        }
    }
}
