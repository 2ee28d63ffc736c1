//! A same-size file's first bytes: when a file of the new release has the size of the
//! current release's copy at its dest, only its hash can say whether it is that copy (reused)
//! or a new file (uploaded), and hashing a big file before its upload starts costs time. The
//! probe hashes the first [`PREFIX_BYTES`] of the host's copy of each such big file; when the
//! local file's first bytes hash otherwise, the files differ and the upload is certain (it
//! starts at once and hashes what it sends, see [`crate::plan::upload_certain`]). When the
//! prefixes agree nothing is decided: the whole file is hashed first, as before.

use crate::release::Paths;
use crate::shell::quote;

/// How much of a file's start is compared.
pub const PREFIX_BYTES: u64 = 1024 * 1024;

/// Files smaller than this are hashed whole before the plan (that is quick).
pub const PREFIX_MIN: u64 = 4 * 1024 * 1024;

/// Shell lines printing `prefix.file=SHA256 DEST` for each of `files` (dest, local size) of
/// at least [`PREFIX_MIN`] whose copy in the current release is a regular file of the same
/// size: the SHA-256 of its first [`PREFIX_BYTES`].
pub fn prefix_script(paths: &Paths, files: &[(String, u64)]) -> String {
    let files: Vec<_> = files.iter().filter(|(_, n)| *n >= PREFIX_MIN).collect();
    if files.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "ferry_prefix() {{ f=\"$HOME\"/{c}/\"$2\"; [ -f \"$f\" ] && [ ! -L \"$f\" ] || return 0; \
         [ \"$(stat -c %s -- \"$f\" 2>/dev/null)\" = \"$1\" ] || return 0; \
         echo \"prefix.file=$(head -c {PREFIX_BYTES} -- \"$f\" | sha256sum | cut -c1-64) $2\"; }}\n",
        c = quote(&paths.current())
    );
    for (dest, size) in files {
        s.push_str(&format!("ferry_prefix {size} {}\n", quote(dest)));
    }
    s
}

/// Parse one `prefix.file=` value (see [`prefix_script`]): (dest, SHA-256 of its start).
pub fn parse_prefix(v: &str) -> Option<(String, String)> {
    let (sha256, dest) = v.split_once(' ')?;
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !dest.is_empty()).then(|| (dest.to_string(), sha256.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `script` prints, run by sh with HOME `home` (it must succeed).
    fn sh(home: &std::path::Path, script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_host_hashes_the_start_of_same_size_big_files_only() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::new("app");
        let rel = home.path().join(paths.dir()).join("releases/r1");
        std::fs::create_dir_all(rel.join("bin")).unwrap();
        std::os::unix::fs::symlink("releases/r1", home.path().join(paths.current())).unwrap();
        let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(rel.join("bin/my app"), &big).unwrap();
        std::fs::write(rel.join("small"), b"x").unwrap();
        let size = big.len() as u64;
        let script = prefix_script(
            &paths,
            &[
                ("bin/my app".into(), size),
                ("other size".into(), size),
                ("small".into(), 1),
                ("absent".into(), size),
            ],
        );
        let text = sh(home.path(), &script);
        let lines: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("prefix.file="))
            .filter_map(parse_prefix)
            .collect();
        let want = crate::digest::sha256_hex(&big[..PREFIX_BYTES as usize]);
        assert_eq!(lines, vec![("bin/my app".to_string(), want)], "{text}");
        // A different size at that dest: nothing.
        let other = prefix_script(&paths, &[("bin/my app".into(), size + 1)]);
        assert_eq!(sh(home.path(), &other), "");
        assert_eq!(prefix_script(&paths, &[("small".into(), 1)]), "");
        assert_eq!(parse_prefix("zz bin/x"), None);
    }
}
