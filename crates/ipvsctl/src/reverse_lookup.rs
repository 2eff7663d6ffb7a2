//! The system resolver's name for an address: `getnameinfo` with
//! `NI_NAMEREQD`, which asks glibc's `gethostbyaddr` (`/etc/hosts`, DNS, as
//! `nsswitch.conf` says) as ipvsadm does, and is safe to call from several
//! threads.
//!
//! The only `unsafe` in `ipvsctl-rs`: one libc call and the C string it
//! fills.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::net::IpAddr;

/// The host name of `addr` (the first name of its `/etc/hosts` line, or its
/// PTR record), if the resolver has one.
pub(crate) fn name(addr: IpAddr) -> Option<String> {
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    let (v4, v6);
    let (sa, len): (*const libc::sockaddr, usize) = match addr {
        IpAddr::V4(a) => {
            v4 = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            (
                std::ptr::from_ref(&v4).cast(),
                size_of::<libc::sockaddr_in>(),
            )
        }
        IpAddr::V6(a) => {
            v6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            (
                std::ptr::from_ref(&v6).cast(),
                size_of::<libc::sockaddr_in6>(),
            )
        }
    };
    // SAFETY: `sa` points at a socket address of `len` bytes that lives to
    // the end of the function, `host` is writable for its length, and no
    // service buffer is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            sa,
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded, so `host` holds a NUL-terminated name
    // within its length.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
