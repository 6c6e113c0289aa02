//! Running as a long-lived service: signals, systemd readiness notification
//! and dropping privileges once the capture handle is open.
//!
//! Signals: SIGTERM and SIGINT ask for a clean stop (drain the pipeline, flush
//! the store and outputs, exit 0); a second one exits at once with status 1.
//! SIGHUP asks for a reload: output files are reopened (log rotation) and the
//! configuration file is checked again (see the CLI for what applies live).
//!
//! Privileges: libpcap needs CAP_NET_RAW and CAP_NET_ADMIN only to open the
//! handle. Right after that, before the first packet is read, the process
//! either switches to `capture.user` (giving it the store and event files) or,
//! without a user, drops every capability it holds (root included) and sets
//! `no_new_privs`, so no packet is ever parsed with privileges.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("capture.user {user:?} does not exist; create it (useradd --system --no-create-home {user}) or set capture.user = \"\"")]
    NoSuchUser { user: String },
    #[error("capture.user {user:?}: only root can switch users; run as root, or set capture.user = \"\" and give the binary CAP_NET_RAW,CAP_NET_ADMIN")]
    NotRoot { user: String },
    #[error("cannot give {path} to user {user:?}: {source}; check that the path is on a local file system")]
    Chown { path: String, user: String, source: std::io::Error },
    #[error("cannot drop privileges ({what}: {source}); refusing to parse packets with them")]
    Drop { what: &'static str, source: std::io::Error },
}

/// Stop and reload requests from signals.
pub struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT (stop; a second one exits now) and SIGHUP (reload).
    pub fn install() -> Result<Signals, ServiceError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            // the conditional one first: it fires only when stop is already set
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop)).map_err(ServiceError::Signals)?;
            signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(ServiceError::Signals)?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&reload)).map_err(ServiceError::Signals)?;
        Ok(Signals { stop, reload })
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether a reload was asked for since the last call.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::Relaxed)
    }
}

/// Sends `state` (e.g. "READY=1") to systemd when started as a `Type=notify`
/// service; does nothing otherwise. Returns whether a notification was sent.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(sock) = UnixDatagram::unbound() else { return false };
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr).is_ok(),
            Err(_) => false,
        }
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path)).is_ok()
    }
}

/// What [`drop_privileges`] did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegeState {
    pub uid: u32,
    pub gid: u32,
    /// Effective capabilities left (a bit mask; 0 after a drop).
    pub capabilities: u64,
}

fn last_os_error(what: &'static str) -> ServiceError {
    ServiceError::Drop { what, source: std::io::Error::last_os_error() }
}

fn lookup_user(user: &str) -> Result<(u32, u32), ServiceError> {
    let name = std::ffi::CString::new(user).map_err(|_| ServiceError::NoSuchUser { user: user.to_string() })?;
    // SAFETY: passwd is plain old data; all zeroes is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized memory owned here.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return Err(ServiceError::NoSuchUser { user: user.to_string() });
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

fn chown_tree(path: &Path, uid: u32, gid: u32, user: &str) -> Result<(), ServiceError> {
    let err = |source| ServiceError::Chown { path: path.display().to_string(), user: user.to_string(), source };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(err)?;
    let meta = std::fs::symlink_metadata(path).map_err(err)?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).map_err(err)? {
            let e = e.map_err(err)?;
            chown_tree(&e.path(), uid, gid, user)?;
        }
    }
    Ok(())
}

/// Effective capabilities of this process, from /proc/self/status.
pub fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Drops privileges after the capture handle is open (see the module doc).
/// `give` lists the files and directories the process still writes
/// (store, event file): they go to `user` when one is set.
pub fn drop_privileges(user: &str, give: &[&Path]) -> Result<PrivilegeState, ServiceError> {
    // SAFETY (all libc calls below): plain system calls on integers or on
    // pointers to memory owned by this function.
    if !user.is_empty() {
        let (uid, gid) = lookup_user(user)?;
        let euid = unsafe { libc::geteuid() };
        if euid != uid {
            if euid != 0 {
                return Err(ServiceError::NotRoot { user: user.to_string() });
            }
            for p in give {
                if p.exists() {
                    chown_tree(p, uid, gid, user)?;
                }
            }
            if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
                return Err(last_os_error("setgroups"));
            }
            if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
                return Err(last_os_error("setresgid"));
            }
            if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
                return Err(last_os_error("setresuid"));
            }
            if unsafe { libc::setuid(0) } == 0 {
                return Err(ServiceError::Drop { what: "root could be regained", source: std::io::Error::other("setuid(0) succeeded") });
            }
        }
    }
    // Whatever the user: no capability is needed any more.
    for cap in 0..64 {
        // fails without CAP_SETPCAP or past the last capability: harmless
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(last_os_error("capset"));
    }
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last_os_error("no_new_privs"));
    }
    let caps = effective_capabilities();
    if caps != 0 {
        return Err(ServiceError::Drop { what: "capabilities remain", source: std::io::Error::other(format!("CapEff {caps:x}")) });
    }
    Ok(PrivilegeState { uid: unsafe { libc::getuid() }, gid: unsafe { libc::getgid() }, capabilities: caps })
}
