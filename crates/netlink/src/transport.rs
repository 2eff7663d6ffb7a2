//! Moving datagrams: the kernel's netlink socket, or any other transport
//! (the tests' scripted kernel) behind the same trait.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_sys::Socket as SysSocket;

/// Receive buffer size asked for (`SO_RCVBUFFORCE` as root, else capped by
/// `net.core.rmem_max`). The batch window is sized from what is granted.
const RCVBUF: usize = 8 << 20;
/// User buffer for one datagram: the kernel's dump datagrams are at most
/// 32 KiB.
const RECV_BUF: usize = 64 << 10;
/// How long to wait for the kernel's next reply. The protocols served here
/// answer within the `sendmsg` or stream a dump; this only fires if
/// something is badly wrong, turning a hang into an error.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends and receives whole netlink datagrams.
pub trait Transport {
    /// Sends one datagram of requests; the kernel handles them all before
    /// this returns, queueing its replies.
    ///
    /// # Errors
    /// The system error, or `WriteZero` for a short send.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Receives one datagram into `buf` (replacing its contents).
    ///
    /// # Errors
    /// `ENOBUFS` (as a raw OS error) when replies were dropped since the
    /// last receive; `WouldBlock` when `nonblocking` and nothing is queued,
    /// or when no reply came in time; any other system error.
    fn recv(&mut self, buf: &mut Vec<u8>, nonblocking: bool) -> io::Result<()>;

    /// The receive buffer's size in bytes, which bounds how many replies
    /// can wait unread.
    fn rcvbuf(&self) -> usize;
}

/// A netlink socket to the kernel, bound to the network namespace of the
/// thread that opened it.
#[derive(Debug)]
pub struct Kernel {
    sock: SysSocket,
    rcvbuf: usize,
}

impl Kernel {
    /// Opens and binds a socket of `protocol` (`NETLINK_GENERIC`,
    /// `NETLINK_NETFILTER`, `NETLINK_ROUTE`...), with an 8 MiB receive
    /// buffer when allowed, `NETLINK_CAP_ACK` (an error echoes the request's
    /// header only), `NETLINK_EXT_ACK` (errors carry the kernel's text) and
    /// a 60 s receive timeout. The last three are best effort: kernels
    /// before 4.3 / 4.12 lack the options, and answer all the same.
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut sock = SysSocket::new(protocol)?;
        sock.bind_auto()?;
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let fd = sock.as_fd();
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(fd, RCVBUF).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(fd, RCVBUF);
        }
        let _ = rustix::net::sockopt::set_socket_timeout(
            fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(RECV_TIMEOUT),
        );
        let rcvbuf = sock.get_rx_buf_sz()?;
        Ok(Kernel { sock, rcvbuf })
    }
}

impl Transport for Kernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let n = self.sock.send(datagram, 0)?;
        if n != datagram.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short netlink send: {n} of {} bytes", datagram.len()),
            ));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, nonblocking: bool) -> io::Result<()> {
        buf.clear();
        buf.reserve(RECV_BUF);
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        let n = loop {
            match self.sock.recv(buf, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("netlink datagram of {n} bytes truncated to {}", buf.len()),
            ));
        }
        Ok(())
    }

    fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }
}
