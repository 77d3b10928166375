//! k6's `--local-ips` / `localIPs`: the source addresses VUs connect from.
//!
//! The syntax is k6's: a comma-separated list of addresses
//! (`10.0.0.1`), inclusive ranges (`10.0.0.1-10.0.0.9`) and CIDR blocks
//! (`192.168.0.0/30`), IPv4 or IPv6. As in k6, an IPv4 block of more than
//! two addresses leaves out its network and broadcast addresses (`/30` is
//! two usable hosts), and a block's host bits are ignored (`10.0.0.7/30` is
//! `10.0.0.4/30`). The pool is the list's addresses in order, and the VUs
//! take them round robin: this process's n-th VU (from 1) connects from
//! address `(n - 1) % len`, as k6 assigns them by local VU id.
//!
//! The pool is expanded once, at load, and capped at [`MAX_ADDRESSES`]:
//! a typo such as `/8` instead of `/28` is an error, not 16 million
//! addresses in memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest pool (a whole IPv4 /16 is 65,534 usable addresses).
pub const MAX_ADDRESSES: usize = 65_536;

/// The expanded pool, in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPool {
    addrs: Vec<IpAddr>,
}

impl IpPool {
    /// Parses k6's syntax; the error names the bad entry and why.
    pub fn parse(text: &str) -> Result<IpPool, String> {
        let mut addrs = Vec::new();
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!(
                    "{text:?} has an empty entry (expected IP, FROM-TO or ADDR/PREFIX, comma-separated)"
                ));
            }
            let (first, count) = block(entry).map_err(|why| format!("{entry:?}: {why}"))?;
            if count > (MAX_ADDRESSES - addrs.len()) as u128 {
                return Err(format!(
                    "{entry:?} makes the pool larger than {MAX_ADDRESSES} addresses; give fewer or smaller ranges"
                ));
            }
            addrs.extend((0..count).map(|i| offset(first, i)));
        }
        Ok(IpPool { addrs })
    }

    /// The address of this process's VU `local_index` (from 0).
    pub fn for_vu(&self, local_index: u64) -> IpAddr {
        self.addrs[(local_index % self.addrs.len() as u64) as usize]
    }

    /// The first address this machine cannot send from, and why (none:
    /// every address is usable). Nothing connects: each address is bound
    /// without a port and released.
    pub fn unusable(&self) -> Option<(IpAddr, std::io::Error)> {
        self.addrs.iter().find_map(|ip| crate::flow::net::check_source(*ip).err().map(|e| (*ip, e)))
    }

    /// Addresses in the pool.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Never true: parsing refuses an empty pool.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// One entry: its first address and how many follow.
fn block(entry: &str) -> Result<(IpAddr, u128), String> {
    if let Some((from, to)) = entry.split_once('-') {
        let from = ip(from.trim())?;
        let to = ip(to.trim())?;
        if from.is_ipv4() != to.is_ipv4() {
            return Err("a range cannot mix IPv4 and IPv6".into());
        }
        let (a, b) = (number(from), number(to));
        if b < a {
            return Err(format!("the range ends before it starts ({to} < {from})"));
        }
        return Ok((from, b - a + 1));
    }
    if let Some((addr, prefix)) = entry.split_once('/') {
        let addr = ip(addr.trim())?;
        let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("the prefix length must be a whole number from 0 to {bits}"))?;
        let host_bits = bits - prefix;
        if host_bits >= 64 {
            // Far beyond the cap either way (and 2^128 does not fit a u128).
            return Err(format!("a /{prefix} block has 2^{host_bits} addresses, more than {MAX_ADDRESSES}"));
        }
        let size = 1u128 << host_bits;
        let network = number(addr) & !(size - 1);
        // k6: an IPv4 block of more than two addresses loses its network and
        // broadcast addresses.
        let (first, count) = if addr.is_ipv4() && size > 2 { (network + 1, size - 2) } else { (network, size) };
        return Ok((from_number(first, addr.is_ipv4()), count));
    }
    Ok((ip(entry)?, 1))
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an IP address"))
}

fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_number(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

fn offset(first: IpAddr, i: u128) -> IpAddr {
    from_number(number(first) + i, first.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<String> {
        IpPool::parse(text).unwrap().addrs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn addresses_ranges_and_blocks_expand_in_order() {
        assert_eq!(list("127.0.0.2-127.0.0.5"), ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
        assert_eq!(list("10.0.0.9, 192.168.0.0/30"), ["10.0.0.9", "192.168.0.1", "192.168.0.2"]);
        // Host bits are ignored; /31 and /32 keep every address.
        assert_eq!(list("192.168.0.7/30"), ["192.168.0.5", "192.168.0.6"]);
        assert_eq!(list("10.1.1.0/31,10.2.2.2/32"), ["10.1.1.0", "10.1.1.1", "10.2.2.2"]);
        assert_eq!(list("10.0.0.255-10.0.1.1"), ["10.0.0.255", "10.0.1.0", "10.0.1.1"]);
        // IPv6 blocks keep their first and last address.
        assert_eq!(list("fd00::/127,::1"), ["fd00::", "fd00::1", "::1"]);
        assert_eq!(IpPool::parse("10.0.0.0/16").unwrap().len(), 65_534);
    }

    #[test]
    fn vus_take_the_addresses_round_robin() {
        let pool = IpPool::parse("127.0.0.2-127.0.0.4").unwrap();
        let got: Vec<String> = (0..7).map(|i| pool.for_vu(i).to_string()).collect();
        assert_eq!(got, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
    }

    #[test]
    fn bad_entries_are_named_with_the_reason() {
        let err = |t: &str| IpPool::parse(t).unwrap_err();
        assert_eq!(err("10.0.0.1,10.0.0.x"), r#""10.0.0.x": "10.0.0.x" is not an IP address"#);
        assert_eq!(
            err("10.0.0.9-10.0.0.1"),
            r#""10.0.0.9-10.0.0.1": the range ends before it starts (10.0.0.1 < 10.0.0.9)"#
        );
        assert_eq!(err("10.0.0.1-::1"), r#""10.0.0.1-::1": a range cannot mix IPv4 and IPv6"#);
        assert_eq!(err("10.0.0.0/33"), r#""10.0.0.0/33": the prefix length must be a whole number from 0 to 32"#);
        assert!(err("10.0.0.1,,10.0.0.2").contains("has an empty entry"));
        assert!(err("").contains("has an empty entry"));
        assert_eq!(
            err("10.0.0.0/8"),
            r#""10.0.0.0/8" makes the pool larger than 65536 addresses; give fewer or smaller ranges"#
        );
        assert!(err("fd00::/16").contains("2^112 addresses"));
        // The cap counts the whole pool.
        assert!(err("10.0.0.0/16,10.1.0.0/24").contains(r#""10.1.0.0/24" makes the pool larger"#));
    }
}
