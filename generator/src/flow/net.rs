//! TCP connections from a chosen source address (`--local-ips`, the IM
//! flows' `localAddrs`), shared by the HTTP and WebSocket flows.
//!
//! Binding a source address uses `IP_BIND_ADDRESS_NO_PORT` on Linux, so the
//! kernel picks the port at connect time per destination instead of
//! reserving one of ~28k ephemeral ports per address at bind time: a source
//! address can hold as many connections as it has ports per destination.

use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `host:port`, from `local` when given (then to an address of
/// the host in the same family as `local`).
pub async fn connect(host: &str, port: u16, local: Option<IpAddr>) -> io::Result<TcpStream> {
    match local {
        None => TcpStream::connect((host, port)).await,
        Some(_) => {
            let addr = resolve(host, port, local).await.map_err(io::Error::other)?;
            connect_addr(addr, local).await
        }
    }
}

/// The first address of `host` (a literal address is taken as is); with a
/// source address, the first of the same family, so an IPv4 source never
/// tries an IPv6 destination.
pub async fn resolve(host: &str, port: u16, local: Option<IpAddr>) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
    match local {
        None => addrs.next().ok_or_else(|| format!("{host} has no address")),
        Some(src) => addrs.find(|a| a.is_ipv4() == src.is_ipv4()).ok_or_else(|| {
            format!("{host} has no {} address to connect to from {src}", if src.is_ipv4() { "IPv4" } else { "IPv6" })
        }),
    }
}

/// Connects to `addr`, from `local` when given.
pub async fn connect_addr(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = local {
        bind_source(&socket, ip)?;
    }
    socket.connect(addr).await
}

/// Checks that this machine can send from `ip` (it is one of its
/// addresses, or routed to it as all of 127.0.0.0/8 is on Linux), without
/// connecting anywhere.
pub fn check_source(ip: IpAddr) -> io::Result<()> {
    let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    bind_source(&socket, ip)
}

fn bind_source(socket: &TcpSocket, ip: IpAddr) -> io::Result<()> {
    bind_no_port(socket)?;
    socket.bind(SocketAddr::new(ip, 0))
}

#[cfg(target_os = "linux")]
fn bind_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;
    let one: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket we own, with a valid int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_no_port(_socket: &TcpSocket) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_sources_can_be_bound_and_foreign_ones_cannot() {
        check_source("127.0.0.1".parse().unwrap()).unwrap();
        check_source("127.0.0.9".parse().unwrap()).unwrap();
        // TEST-NET-3 (RFC 5737) is on no machine.
        let e = check_source("203.0.113.77".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}");
    }

    #[tokio::test]
    async fn a_connection_comes_from_the_chosen_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = connect("localhost", port, Some("127.0.0.3".parse().unwrap())).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.3");
        assert_eq!(client.local_addr().unwrap().ip().to_string(), "127.0.0.3");
        // localhost may resolve to ::1 first; an IPv4 source takes its IPv4 address.
        let addr = resolve("localhost", port, Some("127.0.0.3".parse().unwrap())).await.unwrap();
        assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
    }
}
