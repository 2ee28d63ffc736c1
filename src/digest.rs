//! Digests as text: lowercase hex, the form manifests, release ids and `sha256sum` use.

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
