//! File I/O past the page cache (`O_DIRECT`) where the system allows it: what the reports'
//! writer ([`crate::report::direct_file`]) and the capture's read-ahead
//! ([`crate::capture`]) share.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Alignment of direct I/O's memory, offsets and lengths: the largest logical block size of
/// common devices.
pub const ALIGN: usize = 4096;

/// `P2PTRACE_DIRECT_IO=off` (or `0`, `no`) reads captures and writes reports through the
/// page cache.
pub fn wanted() -> bool {
    !matches!(
        std::env::var("P2PTRACE_DIRECT_IO").as_deref(),
        Ok("off" | "0" | "no")
    )
}

/// `path` opened with `options` and `O_DIRECT`, or `None` where that is refused.
#[cfg(target_os = "linux")]
pub fn open(options: &mut OpenOptions, path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_DIRECT).open(path).ok()
}

#[cfg(not(target_os = "linux"))]
pub fn open(_options: &mut OpenOptions, _path: &Path) -> Option<File> {
    None
}

/// Clears `O_DIRECT` on `file`: later reads and writes go through the page cache.
#[cfg(target_os = "linux")]
pub fn stop(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this `File` owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn stop(_file: &File) -> io::Result<()> {
    Ok(())
}
