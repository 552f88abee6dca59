//! STUB — to be implemented (helper: decode).
#[derive(Clone, Debug)]
pub struct DefragLimits {
    pub max_datagrams: usize,
    pub max_bytes: usize,
    pub timeout_ns: i64,
}
impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_datagrams: 4096,
            max_bytes: 64 << 20,
            timeout_ns: 30_000_000_000,
        }
    }
}
