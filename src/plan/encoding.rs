//! How a file travels to the host, pure: as it is, or gzip-compressed and decompressed on the
//! host before the seal (which checks the result's SHA-256 there).
//!
//! Compression pays when the link is the bottleneck and costs when it is not: on loopback or
//! a LAN the CPU compressing (and the host decompressing) is slower than sending the bytes.
//! The deciding measure is the round trip (the quickest of a few SSH pings just before the
//! upload: see `Connection::round_trip`): a host a few milliseconds or more away is reached over a WAN, VPN or the internet, where links are
//! 10-100 Mbit/s and compression at tens of MB/s per core wins; closer than that, a file is
//! sent as is. gzip because every Linux host has it (Debian and RHEL install it in their
//! minimal images; zstd is not), and the compressor is already linked into ferry (flate2, for
//! SSH itself). Data that does not compress (random, already compressed) is detected block by
//! block and stored as is inside the gzip stream (see `transport::gzip`).

use std::time::Duration;

pub use crate::config::Compress;

/// How one file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Its bytes, as they are.
    Plain,
    /// A gzip stream (members of [`crate::transport::gzip::BLOCK`] bytes each), decompressed
    /// on the host with `gzip -dc`.
    Gzip,
}

/// From this round trip on, `auto` compresses: no loopback or LAN is this far.
pub const WAN_RTT: Duration = Duration::from_millis(4);

/// Smaller files are sent as they are: the bytes saved are fewer than a round trip costs.
pub const MIN_SIZE: u64 = 64 * 1024;

/// How a file of `size` bytes is sent to a host `rtt` away that has (or lacks) `gzip`.
pub fn choose(setting: Compress, size: u64, rtt: Duration, host_gzip: bool) -> Encoding {
    if !host_gzip || size < MIN_SIZE {
        return Encoding::Plain;
    }
    match setting {
        Compress::Never => Encoding::Plain,
        Compress::Always => Encoding::Gzip,
        Compress::Auto if rtt >= WAN_RTT => Encoding::Gzip,
        Compress::Auto => Encoding::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn auto_compresses_over_a_distant_link_only() {
        let far = Duration::from_millis(40);
        let near = Duration::from_micros(300);
        assert_eq!(choose(Compress::Auto, 12 * MIB, far, true), Encoding::Gzip);
        assert_eq!(
            choose(Compress::Auto, 12 * MIB, near, true),
            Encoding::Plain
        );
        assert_eq!(
            choose(Compress::Auto, 12 * MIB, WAN_RTT, true),
            Encoding::Gzip
        );
    }

    #[test]
    fn a_host_without_gzip_and_small_files_get_plain_bytes() {
        let far = Duration::from_millis(40);
        assert_eq!(
            choose(Compress::Always, 12 * MIB, far, false),
            Encoding::Plain
        );
        assert_eq!(
            choose(Compress::Always, MIN_SIZE - 1, far, true),
            Encoding::Plain
        );
        assert_eq!(
            choose(Compress::Always, MIN_SIZE, far, true),
            Encoding::Gzip
        );
    }

    #[test]
    fn always_and_never_override_the_round_trip() {
        let near = Duration::from_micros(300);
        let far = Duration::from_millis(40);
        assert_eq!(choose(Compress::Always, MIB, near, true), Encoding::Gzip);
        assert_eq!(choose(Compress::Never, MIB, far, true), Encoding::Plain);
    }

    #[test]
    fn settings_parse_by_their_names() {
        assert_eq!(Compress::parse("auto"), Some(Compress::Auto));
        assert_eq!(Compress::parse("always"), Some(Compress::Always));
        assert_eq!(Compress::parse("never"), Some(Compress::Never));
        assert_eq!(Compress::parse("yes"), None);
    }
}
