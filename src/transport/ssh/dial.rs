//! The TCP connection an SSH connection runs over when there is no jump host or ProxyCommand:
//! to the addresses the host's name resolves to that AddressFamily allows (`inet`: IPv4 only,
//! `inet6`: IPv6 only, `any`), each tried in the resolver's order, as ssh does; and the pause
//! between attempts (ConnectionAttempts, or a handshake the server cut short).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::{AddressFamily, Host};
use crate::error::Error;

/// Does AddressFamily allow this address?
pub(super) fn allows(family: AddressFamily, addr: &SocketAddr) -> bool {
    match family {
        AddressFamily::Any => true,
        AddressFamily::Inet => addr.is_ipv4(),
        AddressFamily::Inet6 => addr.is_ipv6(),
    }
}

/// Connect to the host's address and port (one attempt over every allowed address).
pub(super) async fn tcp(host: &Host) -> Result<TcpStream, Error> {
    let connect_err = |source| Error::Connect {
        host: host.name.clone(),
        addr: format!("{}:{}", host.address, host.port),
        source,
        attempts: 1,
    };
    let family = host.ssh.address_family;
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.address.as_str(), host.port))
        .await
        .map_err(connect_err)?
        .collect();
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .filter(|a| allows(family, a))
        .copied()
        .collect();
    if allowed.is_empty() {
        let (wanted, flag) = match family {
            AddressFamily::Inet6 => ("IPv6", "inet6"),
            _ => ("IPv4", "inet"),
        };
        return Err(connect_err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!(
                "{} has no {wanted} address (AddressFamily {flag} in the OpenSSH config; it resolves to {})",
                host.address,
                resolved
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    let mut last = None;
    for addr in allowed {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true).ok();
                return Ok(tcp);
            }
            Err(e) => {
                tracing::debug!("{}: cannot connect to {addr}: {e}", host.name);
                last = Some(e);
            }
        }
    }
    Err(connect_err(last.expect("at least one address was tried")))
}

/// The pause before attempt `attempt + 1`: 100 ms doubling per attempt (at most 1.6 s), plus
/// `jitter` (0..1) times as much again, so that connections dropped together do not all come
/// back together.
pub(super) fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 100u64 << attempt.clamp(1, 5).saturating_sub(1);
    let extra = (base as f64 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(base + extra)
}

/// A random fraction in 0..1, from the standard library's randomly seeded hasher.
pub(super) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_family_picks_the_addresses_ssh_would_use() {
        let v4: SocketAddr = "127.0.0.1:22".parse().unwrap();
        let v6: SocketAddr = "[::1]:22".parse().unwrap();
        assert!(allows(AddressFamily::Any, &v4) && allows(AddressFamily::Any, &v6));
        assert!(allows(AddressFamily::Inet, &v4) && !allows(AddressFamily::Inet, &v6));
        assert!(!allows(AddressFamily::Inet6, &v4) && allows(AddressFamily::Inet6, &v6));
    }
}
