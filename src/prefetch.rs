//! A cache hint for per-flow state kept in million-entry vectors: asking for an element's
//! line as soon as its index is known lets the miss overlap other work instead of stalling
//! the first read of it (the per-flow class counters cost ~6 % of a run on the simulator's
//! `large` capture as a stall).

/// Hints that `slice[i]` (each of its cache lines) will be read soon. No effect on results;
/// a no-op off x86-64 and for an index out of range.
#[inline]
pub fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = slice.get(i) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = std::ptr::from_ref(x).cast::<i8>();
        for offset in (0..size_of::<T>()).step_by(64) {
            // SAFETY: a prefetch never faults nor changes memory, and the addresses lie
            // within a live element anyway. (The intrinsic is `unsafe` only for its `sse`
            // target feature, which every x86-64 target has.)
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}
