//! STUB — to be implemented (helper: decode).
#[derive(Clone, Debug, Default)]
pub struct DecodeStats {
    pub frames: u64,
}
