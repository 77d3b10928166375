//! The open-files limit: every connection is a file descriptor, and the
//! soft limit (often 1024) is far below what one process can hold. Raising
//! it to the hard limit needs no privilege.

/// The soft and hard `RLIMIT_NOFILE` after raising the soft one to the hard one.
pub fn raise_open_files() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}
