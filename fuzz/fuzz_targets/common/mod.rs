//! What the whole-pipeline targets (`pipeline`, `analysis`) share.

use p2ptrace::decode::DefragLimits;
use p2ptrace::dissect::DissectConfig;
use p2ptrace::flow::{FlowConfig, IdleTimeouts};
use p2ptrace::pipeline::PipelineConfig;
use p2ptrace::time::Ts;

/// Frames analysed per input at most (a gzip input can expand a lot).
pub const MAX_FRAMES: u64 = 4096;

/// Small caps (16 flows, short idle timeouts, small reassembly and pending budgets) so
/// eviction, expiry and forced skips are reachable from small inputs.
pub fn small_config() -> PipelineConfig {
    PipelineConfig {
        flow: FlowConfig {
            idle: IdleTimeouts {
                tcp: Some(60 * Ts::NANOS_PER_SEC),
                udp: Some(30 * Ts::NANOS_PER_SEC),
                other: Some(10 * Ts::NANOS_PER_SEC),
            },
            max_flows: 16,
        },
        defrag: DefragLimits {
            max_datagrams: 8,
            max_bytes: 64 << 10,
            timeout_ns: 30 * Ts::NANOS_PER_SEC,
        },
        dissect: Some(DissectConfig {
            max_pending_bytes: 16 << 10,
            reassembly_budget: 64 << 10,
            ..DissectConfig::default()
        }),
    }
}
