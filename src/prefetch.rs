//! Cache hints for per-flow state kept in million-entry vectors or behind pointers: asking
//! for a line as soon as its address is known lets the miss overlap other work instead of
//! stalling the first read of it (the per-flow class counters cost ~6 % of a run on the
//! simulator's `large` capture as a stall, the claiming dissector's state ~7 %).

/// Hints that `slice[i]` (each of its cache lines) will be read soon. No effect on results;
/// a no-op off x86-64 and for an index out of range.
#[inline]
pub fn prefetch<T>(slice: &[T], i: usize) {
    if let Some(x) = slice.get(i) {
        let start = std::ptr::from_ref(x).cast::<u8>();
        for offset in (0..size_of::<T>()).step_by(64) {
            prefetch_ptr(start.wrapping_add(offset));
        }
    }
}

/// Hints that the cache line at `ptr` will be read soon. Never dereferences it: any
/// pointer, even a dangling one, is harmless.
#[inline]
pub fn prefetch_ptr(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults nor changes memory. (The intrinsic is `unsafe`
        // only for its `sse` target feature, which every x86-64 target has.)
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
