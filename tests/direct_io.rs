//! `analyze --csv` writes flows.csv and messages.csv past the page cache where the
//! filesystem allows (src/report/direct_file.rs), and through it with
//! `P2PTRACE_DIRECT_IO=off`: the same bytes either way, and what the kernel keeps cached
//! afterwards tells which way they went.

#![cfg(target_os = "linux")]

mod common;

use common::{bin, sim_capture};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

/// Runs `analyze --csv dir` on the phone-home scenario with `P2PTRACE_DIRECT_IO=mode`
/// (unset for `None`).
fn analyze(dir: &Path, mode: Option<&str>) {
    let mut cmd = Command::new(bin());
    cmd.env_remove("P2PTRACE_DIRECT_IO");
    if let Some(mode) = mode {
        cmd.env("P2PTRACE_DIRECT_IO", mode);
    }
    let o = cmd
        .args(["analyze", "--quiet", "--csv"])
        .arg(dir)
        .arg(sim_capture("phone-home"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Pages of `path` in the page cache, and all its pages (`mincore` over a shared mapping).
fn cached_pages(path: &Path) -> (usize, usize) {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    let mut resident = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of a file we opened, unmapped below; `resident` has
    // one byte per page of it, as mincore needs; nothing reads the mapped memory.
    let cached = unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", path.display());
        let rc = libc::mincore(addr, len, resident.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore {}", path.display());
        resident.iter().filter(|&&b| b & 1 != 0).count()
    };
    (cached, pages)
}

/// Whether files in `dir` can be opened for direct I/O at all.
fn takes_direct_io(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("probe"))
        .is_ok()
}

#[test]
fn the_big_reports_skip_the_page_cache_unless_told_not_to() {
    // Under target/ (a disk in CI), not /tmp, which may be a tmpfs: a tmpfs keeps every
    // page it is written whatever the flags.
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if !takes_direct_io(base.path()) {
        eprintln!("skipped: {} refuses O_DIRECT", base.path().display());
        return;
    }
    let (direct, cached) = (base.path().join("direct"), base.path().join("cached"));
    analyze(&direct, None);
    analyze(&cached, Some("off"));
    for name in ["flows.csv", "messages.csv"] {
        let (a, b) = (direct.join(name), cached.join(name));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{name}"
        );
    }
    // Read back above, so compare the cache as left by a fresh run of each.
    analyze(&direct, None);
    analyze(&cached, Some("off"));
    let (in_cache, pages) = cached_pages(&direct.join("messages.csv"));
    assert!(pages > 100, "messages.csv too small to tell: {pages} pages");
    assert_eq!(
        in_cache, 0,
        "written directly: none of {pages} pages cached"
    );
    let (in_cache, pages) = cached_pages(&cached.join("messages.csv"));
    assert!(
        in_cache * 2 > pages,
        "written through the cache: {in_cache} of {pages} pages cached"
    );
    let (in_cache, _) = cached_pages(&direct.join("flows.csv"));
    assert_eq!(in_cache, 0, "flows.csv written directly");
}
