//! Dropping root: after the capture and the output files are open, become an unprivileged
//! user so that no parser ever runs as root (why Wireshark splits out dumpcap).
//!
//! Guarantees: [`drop_to`] clears supplementary groups, sets the group then the user, and
//! verifies the change stuck (real and effective ids, and that root cannot be regained)
//! before returning Ok. Call it before any other thread starts. Must not: continue on any
//! failure — the caller ends the run instead.

use std::ffi::CString;
use std::path::Path;

/// A user to become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// True when running as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks `user` up in the password database (a name, or a numeric uid).
pub fn lookup(user: &str) -> Result<Target, String> {
    let name = CString::new(user).map_err(|_| format!("user '{user}': bad name"))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into pw/buf (sizes given) and sets out to &pw or null.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if rc == 0 && !out.is_null() {
        return Ok(Target {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        });
    }
    if let Ok(uid) = user.parse::<libc::uid_t>() {
        return Ok(Target { uid, gid: uid });
    }
    Err(format!("no user named '{user}' to drop privileges to"))
}

/// Gives `path` to `target` (so the unprivileged user can keep writing it).
pub fn chown(path: &Path, target: Target) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(target.uid), Some(target.gid))
        .map_err(|e| format!("cannot give {} to uid {}: {e}", path.display(), target.uid))
}

/// Becomes `target` for good (all threads: glibc's set*id apply process-wide).
pub fn drop_to(target: Target) -> Result<(), String> {
    let fail = |what: &str| {
        format!(
            "dropping privileges: {what}: {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: plain set*id calls; each result is checked.
    unsafe {
        if libc::setgroups(1, &target.gid) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setgid(target.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(target.uid) != 0 {
            return Err(fail("setuid"));
        }
        let stuck = libc::getuid() == target.uid
            && libc::geteuid() == target.uid
            && libc::getgid() == target.gid
            && libc::getegid() == target.gid;
        if !stuck {
            return Err("dropping privileges: the new ids did not stick".into());
        }
        if target.uid != 0 && libc::setuid(0) == 0 {
            return Err("dropping privileges: root could be regained".into());
        }
    }
    Ok(())
}

/// The `Uid:` line of the calling thread's /proc status (real, effective, saved, fs).
pub fn thread_uid_line() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Uid: unknown".into())
}

/// Every thread of this process (its `Name:` from /proc) with its `Uid:` line: a drop must
/// reach threads started before it too (the report writers).
pub fn all_threads_uid_lines() -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .map(|status| {
            let field = |key: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(key))
                    .map_or_else(|| format!("{key} unknown"), str::to_string)
            };
            (field("Name:"), field("Uid:"))
        })
        .collect()
}

/// Whether the (real) user may create files in `dir`.
pub fn can_write_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}
