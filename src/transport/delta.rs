//! A file sent as the difference from the copy the host already has (the current release's
//! file at the same dest), pure: content-defined chunking of both copies (a gear rolling hash,
//! as FastCDC, restic and casync cut), so that bytes inserted or removed early in a file move
//! its later chunk boundaries with them and the chunks still match; then a list of
//! operations: copy a range of the old copy, or take the next bytes of the literals (what
//! the old copy does not have). The host rebuilds the file with `dd` from both (see
//! [`crate::release::Decode::Patch`]) and checks its SHA-256 before the seal.
//!
//! The old copy must be known here: ferry keeps the files it uploaded in a local cache by
//! SHA-256 (see [`crate::prepare::blobs`]), and the host's probe says which SHA-256 its
//! current copy has. Without that copy (another machine deployed it, a CI runner's first
//! run) the file goes whole (compressed when the link is slow).

use std::collections::HashMap;

/// Chunks are cut where the rolling hash has these bits clear: about 1 in 4096 bytes.
const MASK: u64 = (1 << 12) - 1;
/// No cut before this many bytes of a chunk, and always one after `MAX`.
const MIN: usize = 1024;
const MAX: usize = 32 * 1024;

/// One operation of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `len` bytes of the old copy from `offset`.
    Copy { offset: u64, len: u64 },
    /// `len` bytes of the literals from `offset`.
    Literal { offset: u64, len: u64 },
}

/// A new file as operations on the old copy plus literal bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub ops: Vec<Op>,
    pub literals: Vec<u8>,
}

impl Delta {
    /// The operations as the host's rebuild loop reads them: `c OFFSET LEN` or `l OFFSET LEN`
    /// per line.
    pub fn ops_text(&self) -> String {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Copy { offset, len } => format!("c {offset} {len}\n"),
                Op::Literal { offset, len } => format!("l {offset} {len}\n"),
            })
            .collect()
    }

    /// Rebuild the new file from `old` (what the host does, for tests).
    pub fn apply(&self, old: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for op in &self.ops {
            let (from, offset, len) = match *op {
                Op::Copy { offset, len } => (old, offset, len),
                Op::Literal { offset, len } => (&self.literals[..], offset, len),
            };
            out.extend_from_slice(&from[offset as usize..(offset + len) as usize]);
        }
        out
    }
}

/// The gear table: 256 pseudo-random words, the same on every run (splitmix64).
fn gear() -> &'static [u64; 256] {
    static GEAR: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    GEAR.get_or_init(|| {
        let mut x: u64 = 0x5EED_F0E1_D00D_CAFE;
        std::array::from_fn(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    })
}

/// The chunks of `data` as (start, len), in order, covering it all.
pub fn chunks(data: &[u8]) -> Vec<(usize, usize)> {
    let gear = gear();
    let mut out = Vec::with_capacity(data.len() / 4096 + 1);
    let mut start = 0;
    while start < data.len() {
        let rest = &data[start..];
        let mut cut = rest.len().min(MAX);
        let mut h: u64 = 0;
        for (i, &b) in rest.iter().enumerate().take(MAX) {
            h = (h << 1).wrapping_add(gear[b as usize]);
            if i + 1 >= MIN && h & MASK == 0 {
                cut = i + 1;
                break;
            }
        }
        out.push((start, cut));
        start += cut;
    }
    out
}

fn key(chunk: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, chunk);
    d.as_ref().try_into().expect("a SHA-256 is 32 bytes")
}

/// `new` as a delta from `old`.
pub fn diff(old: &[u8], new: &[u8]) -> Delta {
    let mut known: HashMap<[u8; 32], u64> = HashMap::new();
    for (start, len) in chunks(old) {
        known
            .entry(key(&old[start..start + len]))
            .or_insert(start as u64);
    }
    let mut delta = Delta::default();
    for (start, len) in chunks(new) {
        let chunk = &new[start..start + len];
        let len = len as u64;
        let op = match known.get(&key(chunk)) {
            Some(&offset) => Op::Copy { offset, len },
            None => {
                let offset = delta.literals.len() as u64;
                delta.literals.extend_from_slice(chunk);
                Op::Literal { offset, len }
            }
        };
        // Ranges that continue each other are one operation (one `dd` on the host).
        match (delta.ops.last_mut(), op) {
            (Some(Op::Copy { offset: o, len: l }), Op::Copy { offset, len: n })
                if *o + *l == offset =>
            {
                *l += n
            }
            (Some(Op::Literal { len: l, .. }), Op::Literal { len: n, .. }) => *l += n,
            (_, op) => delta.ops.push(op),
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_data_within_their_bounds() {
        let data = noise(1 << 20, 7);
        let c = chunks(&data);
        assert_eq!(c.iter().map(|(_, l)| l).sum::<usize>(), data.len());
        assert!(
            c.iter()
                .rev()
                .skip(1)
                .all(|&(_, l)| (MIN..=MAX).contains(&l))
        );
        // About 4 KiB on average.
        let avg = data.len() / c.len();
        assert!((2048..12288).contains(&avg), "{avg}");
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn bytes_inserted_early_cost_about_a_chunk_and_the_rest_is_copied() {
        let old = noise(2 << 20, 11);
        let mut new = old.clone();
        // A longer path string near the start: every later byte moves by 13.
        new.splice(5000..5000, b"/home/someone".iter().copied());
        // And one byte changed late.
        new[1_500_000] ^= 0xff;
        let d = diff(&old, &new);
        assert_eq!(d.apply(&old), new);
        assert!(
            d.literals.len() < 5 * MAX,
            "{} literal bytes",
            d.literals.len()
        );
        assert!(d.ops.len() <= 8, "{:?}", d.ops);
    }

    #[test]
    fn an_unrelated_file_is_all_literals_and_an_equal_one_one_copy() {
        let old = noise(300_000, 3);
        let new = noise(300_000, 5);
        let d = diff(&old, &new);
        assert_eq!(d.apply(&old), new);
        assert_eq!(d.literals.len(), new.len());
        assert_eq!(d.ops.len(), 1);

        let same = diff(&old, &old);
        assert_eq!(
            same.ops,
            vec![Op::Copy {
                offset: 0,
                len: old.len() as u64
            }]
        );
        assert!(same.literals.is_empty());
        assert_eq!(same.ops_text(), format!("c 0 {}\n", old.len()));
    }

    #[test]
    fn an_empty_new_file_is_no_operation() {
        let d = diff(b"old", b"");
        assert!(d.ops.is_empty() && d.apply(b"old").is_empty());
    }
}
