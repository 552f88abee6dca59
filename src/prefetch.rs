//! Cache hints for per-flow state kept in million-entry vectors or behind pointers: asking
//! for a line as soon as its address is known lets the miss overlap other work instead of
//! stalling the first read of it (the per-flow class counters cost ~6 % of a run on the
//! simulator's `large` capture as a stall, the claiming dissector's state ~7 %). And TLB
//! hints: such vectors span hundreds of MB, so with 4 KiB pages each random access also
//! walks the page tables (prefetches too) — [`huge_pages`] asks for 2 MiB pages instead.
//! And page hints: such vectors grow through [`push_huge`] and [`grow_huge_with`], which
//! have a page worker thread map the pages just ahead of their end, so the
//! kernel zeroes fresh pages there rather than on the analysis thread.

/// Hints that `slice[i]` (each of its cache lines) will be read soon. No effect on results;
/// a no-op off x86-64 and for an index out of range.
#[inline]
pub fn prefetch<T>(slice: &[T], i: usize) {
    if let Some(x) = slice.get(i) {
        // Every line the element touches: one not aligned to a line spans one more.
        let start = std::ptr::from_ref(x).cast::<u8>();
        let skew = start as usize % LINE;
        for offset in (0..skew + size_of::<T>()).step_by(LINE) {
            prefetch_ptr(start.wrapping_add(offset).wrapping_sub(skew));
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

/// Cache line size of x86-64 and most aarch64 cores.
const LINE: usize = 64;

/// Transparent huge pages are this large on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Hints that `v`'s buffer (its whole capacity) is read at random: asks the kernel to back
/// it with transparent huge pages, which it does when THP is `always` or `madvise` (the
/// usual default). Pages already touched stay as they are, so call it right after the
/// buffer is allocated or grows. No effect on results; a no-op off Linux, for buffers
/// under two huge pages, and when the kernel declines. See [`reserve_huge`] for a growing
/// vector.
pub fn huge_pages<T>(v: &Vec<T>) {
    let bytes = v.capacity().saturating_mul(size_of::<T>());
    if bytes < 2 * HUGE_PAGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let (first, end) = (
        start.next_multiple_of(HUGE_PAGE),
        (start + bytes) & !(HUGE_PAGE - 1),
    );
    #[cfg(target_os = "linux")]
    if end > first {
        // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes how its
        // pages are backed, never their contents.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (first, end);
}

/// Reserves room for `max_len` elements in an empty `v` at once, advised with
/// [`huge_pages`], for a vector known never to grow past `max_len`: only address space is
/// taken, pages are backed as the vector fills, and it never grows by copying into a fresh
/// buffer — fresh memory is slow to touch on virtual machines (the kernel zeroing the new
/// buffer's huge pages took 2–14 % of a run on the simulator's `large` capture), and each
/// copy touched about as much again as the vector held. Does nothing for vectors too small
/// for huge pages or not empty; if the system refuses that much address space, growth
/// stays with [`reserve_huge`].
pub fn reserve_ceiling<T>(v: &mut Vec<T>, max_len: usize) {
    if !v.is_empty() || max_len.saturating_mul(size_of::<T>()) < 2 * HUGE_PAGE {
        return;
    }
    if v.try_reserve_exact(max_len).is_ok() {
        huge_pages(v);
    }
}

/// Makes room for `additional` more elements in `v`, growing (by doubling) into a fresh
/// buffer advised with [`huge_pages`] before anything is written to it: growing in place
/// would keep the old part's small pages.
pub fn reserve_huge<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() >= additional {
        return;
    }
    let cap = (v.len().saturating_add(additional)).max(v.capacity().saturating_mul(2));
    if cap.saturating_mul(size_of::<T>()) < 2 * HUGE_PAGE {
        v.reserve(cap - v.len());
        return;
    }
    let mut grown = Vec::with_capacity(cap);
    huge_pages(&grown);
    grown.append(v);
    *v = grown;
}

/// `v.push(x)` through [`reserve_huge`], with the spare capacity ahead prefaulted
/// (`prefault_ahead`).
#[inline]
pub fn push_huge<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        reserve_huge(v, 1);
    }
    v.push(x);
    prefault_ahead(v, v.len() - 1);
}

/// `v.resize_with(len, f)` through [`reserve_huge`], with the spare capacity ahead
/// prefaulted (`prefault_ahead`); never shrinks.
pub fn grow_huge_with<T>(v: &mut Vec<T>, len: usize, f: impl FnMut() -> T) {
    let old_len = v.len();
    if len <= old_len {
        return;
    }
    reserve_huge(v, len - old_len);
    v.resize_with(len, f);
    prefault_ahead(v, old_len);
}

/// Bytes of a growing vector's spare capacity mapped ahead at a time.
const PREFAULT_STEP: usize = 2 * HUGE_PAGE;

/// After `v` grew from `old_len`: when it entered a new [`PREFAULT_STEP`] of its buffer (or
/// began), a helper thread maps the step after that, so the page faults — the kernel zeroing
/// fresh (huge) pages, 4–8 % of a run on the simulator's `large` capture and slow on virtual
/// machines — are taken there rather than on the next pushes. No effect on contents or
/// results; a no-op off Linux and for vectors too small for huge pages.
#[inline]
fn prefault_ahead<T>(v: &Vec<T>, old_len: usize) {
    let size = size_of::<T>();
    let step = |len: usize| len.saturating_mul(size) / PREFAULT_STEP;
    let now = step(v.len());
    if (now != step(old_len) || old_len == 0) && v.capacity().saturating_mul(size) >= 2 * HUGE_PAGE
    {
        let start = v.as_ptr() as usize;
        let end = start.saturating_add(v.capacity() * size);
        let from = start.saturating_add((now + 1) * PREFAULT_STEP);
        prefault(from, end.min(from.saturating_add(PREFAULT_STEP)));
    }
}

/// Asks the page worker — one thread, started on first use and shared by the whole
/// process — to map the pages of `from..end` writable, in the order asked; inline if the
/// thread cannot start. Nobody waits for it.
#[cold]
fn prefault(from: usize, end: usize) {
    use std::sync::OnceLock;
    use std::sync::mpsc::{self, Sender};
    static WORKER: OnceLock<Option<Sender<(usize, usize)>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("page worker".into())
            .spawn(move || {
                rx.into_iter()
                    .for_each(|(from, end)| populate_write(from, end))
            })
            .ok()
            .map(|_| tx)
    });
    if worker
        .as_ref()
        .is_none_or(|tx| tx.send((from, end)).is_err())
    {
        populate_write(from, end);
    }
}

/// Faults in the whole pages of `from..end` as a write would (Linux; a no-op elsewhere).
fn populate_write(from: usize, end: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let first = from.next_multiple_of(PAGE);
        if end > first {
            // SAFETY: MADV_POPULATE_WRITE faults pages in as a write would but writes
            // nothing, so no memory changes — also if the range was freed or reused since it
            // was asked for (unmapped: it just fails).
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    end - first,
                    libc::MADV_POPULATE_WRITE,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_leave_contents_alone() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..1_000_000u64 {
            push_huge(&mut v, i);
        }
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        huge_pages(&Vec::<u8>::new());
        huge_pages(&vec![0u8; 1]);
    }

    #[test]
    fn a_ceiling_is_reserved_once_and_filling_up_to_it_never_moves_the_buffer() {
        let mut v: Vec<u64> = Vec::new();
        reserve_ceiling(&mut v, 1_000_000);
        assert!(v.capacity() >= 1_000_000);
        let buffer = v.as_ptr();
        for i in 0..1_000_000u64 {
            push_huge(&mut v, i);
        }
        assert_eq!(v.as_ptr(), buffer);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        // Too small for huge pages, already in use, or more than any address space: no-ops.
        let mut small: Vec<u64> = Vec::new();
        reserve_ceiling(&mut small, 1000);
        assert_eq!(small.capacity(), 0);
        let mut used = vec![1u64];
        reserve_ceiling(&mut used, 1_000_000);
        assert_eq!(used.capacity(), 1);
        let mut absurd: Vec<u64> = Vec::new();
        reserve_ceiling(&mut absurd, usize::MAX / 4);
        assert_eq!(absurd.capacity(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_step_after_the_one_being_filled_is_mapped_ahead_and_contents_stay() {
        let mut v: Vec<u64> = Vec::new();
        reserve_ceiling(&mut v, 8 << 20);
        let step = PREFAULT_STEP / size_of::<u64>();
        // Into the second step: the third is mapped ahead; nothing past it was asked for.
        for i in 0..step as u64 + 1 {
            push_huge(&mut v, i);
        }
        let base = v.as_ptr() as usize;
        let ahead = |k: usize| resident_pages(base + k * PREFAULT_STEP, PREFAULT_STEP);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ahead(2) < PREFAULT_STEP / 4096 - 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(ahead(2) >= PREFAULT_STEP / 4096 - 1, "{} pages", ahead(2));
        assert_eq!(ahead(5), 0, "far ahead is left alone");
        // The same through growth by `grow_huge_with`; contents as written.
        grow_huge_with(&mut v, 5 * step, || 7);
        assert!(
            v.iter()
                .take(step + 1)
                .enumerate()
                .all(|(i, &x)| x == i as u64)
        );
        assert!(v.iter().skip(step + 1).all(|&x| x == 7));
        while ahead(6) < PREFAULT_STEP / 4096 - 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(ahead(6) >= PREFAULT_STEP / 4096 - 1, "{} pages", ahead(6));
    }

    /// Pages of `addr..addr + len` (whole pages inside it) that are resident (`mincore`).
    #[cfg(target_os = "linux")]
    fn resident_pages(addr: usize, len: usize) -> usize {
        let first = addr.next_multiple_of(4096);
        let pages = (addr + len - first) / 4096;
        let mut vec = vec![0u8; pages];
        // SAFETY: `vec` has one byte per page of the range; mincore only reads page tables.
        let rc =
            unsafe { libc::mincore(first as *mut libc::c_void, pages * 4096, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }
}
