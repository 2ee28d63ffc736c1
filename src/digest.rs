//! Digests as text: lowercase hex, the form manifests, release ids and `sha256sum` use.

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A read buffer that starts small and grows (up to `max`) only while reads fill it: a small
/// file costs a small buffer, not `max` zeroed bytes (a release of 10,000 small files zeroed
/// gigabytes with a fixed 1 MiB buffer per file).
pub struct ReadBuf {
    buf: Vec<u8>,
    max: usize,
}

/// The first size of a [`ReadBuf`].
const FIRST_READ: usize = 16 * 1024;

impl ReadBuf {
    pub fn new(max: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0u8; FIRST_READ.min(max)],
            max,
        }
    }

    /// The buffer to read into next.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The bytes of the last read (`n` of them), growing the buffer when they filled it.
    pub fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.buf.len() && self.buf.len() < self.max {
            let grown = (self.buf.len() * 4).min(self.max);
            self.buf.resize(grown, 0);
        }
        &self.buf[..n]
    }
}

/// Lowercase hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_grows_only_while_reads_fill_it() {
        let mut b = ReadBuf::new(1 << 20);
        assert_eq!(b.space().len(), FIRST_READ);
        b.space()[..3].copy_from_slice(b"abc");
        assert_eq!(b.filled(3), b"abc");
        assert_eq!(b.space().len(), FIRST_READ);
        let n = b.space().len();
        b.filled(n);
        assert_eq!(b.space().len(), 4 * FIRST_READ);
        for _ in 0..10 {
            let n = b.space().len();
            b.filled(n);
        }
        assert_eq!(b.space().len(), 1 << 20);
        assert_eq!(ReadBuf::new(100).space().len(), 100);
    }
}
