//! Uploads gzip-compressed for a distant host (`compress`): what arrives on the host is the
//! files' own bytes, fewer bytes crossed the link, and a compressed file that is not what was
//! sent is refused at the seal with the old release still serving.

use crate::faults::{Bg, Gate, current, release_dirs, result, started_from, started_from_unit};
use crate::support::{Project, demo_bin, host_table, remote};

/// `[hosts.web1]` for `user` with `compress = "..."`, and service `app` with `files`.
pub(crate) fn config(user: &str, compress: &str, files: &[(&str, &str)]) -> String {
    let mut s = format!(
        "{}\ncompress = \"{compress}\"\n\n[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\n",
        host_table("web1", user).trim_end()
    );
    for (source, mode) in files {
        s.push_str(&format!(
            "[[services.app.files]]\nsource = \"{source}\"\ndest = \"{source}\"\nmode = \"{mode}\"\n"
        ));
    }
    s
}

fn random(n: usize) -> Vec<u8> {
    // Not compressible: a xorshift stream (no crate needed).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn uploaded(run: &crate::support::Run) -> serde_json::Value {
    run.events("phase")
        .into_iter()
        .find(|e| e["phase"] == "uploaded")
        .unwrap_or_else(|| panic!("no uploaded phase\n{run}"))
}

#[test]
fn compressed_uploads_arrive_whole_and_fewer_bytes_cross_the_link() {
    let user = "ferry85";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    // A real program (compresses to about a third), data that does not compress at all
    // (3.5 MiB: several blocks, stored as they are), and a file too small to compress.
    std::fs::copy(demo_bin(), p.path("server")).unwrap();
    p.write("noise.bin", random(3 * 1024 * 1024 + 512 * 1024));
    p.write("small.txt", "small\n");
    let files = [
        ("server", "0755"),
        ("noise.bin", "0640"),
        ("small.txt", "0644"),
    ];
    p.config(&config(user, "always", &files));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let up = uploaded(&run);
    let (bytes, sent) = (
        up["bytes"].as_u64().unwrap(),
        up["sent_bytes"].as_u64().unwrap(),
    );
    println!("compressed upload: {bytes} bytes of files, {sent} sent");
    let server = std::fs::metadata(p.path("server")).unwrap().len();
    // The program shrank; the noise cannot: what was saved is most of the program.
    assert!(sent < bytes - server / 3, "{bytes} -> {sent}\n{run}");
    assert!(
        up["message"]
            .as_str()
            .unwrap()
            .contains("sent gzip-compressed"),
        "{run}"
    );

    // On the host: each file's own bytes and mode, and nothing left of the compressed copies.
    let release = format!("releases/{}", result(&run)["release"].as_str().unwrap());
    assert_eq!(current(user, "app"), release);
    assert_eq!(started_from(user, "app"), release);
    for (f, mode) in files {
        let local = std::fs::read(p.path(f)).unwrap();
        let out = r.ssh(
            user,
            &format!(
                "cd ~/.local/share/ferry/app/current && sha256sum < {f} | cut -c1-64 && stat -c %a {f}"
            ),
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(sha256(&local).as_str()), "{f}");
        assert_eq!(lines.next(), Some(mode.trim_start_matches('0')), "{f}");
    }
    let left = r.ssh(user, "ls -A ~/.local/share/ferry/app/current/.ferry");
    assert!(!left.contains("incoming"), "{left}");

    // `never`: the same bytes go as they are (a changed file, so something is sent).
    p.write("noise.bin", random(1024 * 1024));
    p.config(&config(user, "never", &files));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let up = uploaded(&run);
    assert_eq!(up["sent_bytes"], up["bytes"], "{run}");
    assert!(!up["message"].as_str().unwrap().contains("gzip"), "{run}");
}

#[test]
fn a_compressed_file_that_is_not_what_was_sent_is_refused_at_the_seal() {
    let user = "ferry86";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    std::fs::copy(demo_bin(), p.path("server")).unwrap();
    p.config(&config(user, "never", &[("server", "0755")]));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = current(user, "app");

    // The next release, compressed; before its seal the compressed copy on the host is
    // replaced by another (valid) gzip stream: decompressing works, the SHA-256 does not match.
    p.write("server", random(300 * 1024));
    p.config(&config(user, "always", &[("server", "0755")]));
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("seal"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=seal");
    let swapped = r.ssh(
        user,
        "n=0; for f in ~/.local/share/ferry/app/releases/.*.partial/.ferry/incoming-*.gz; do echo other | gzip > \"$f\"; n=$((n+1)); done; echo $n",
    );
    assert_eq!(swapped.trim(), "1", "one compressed file is staged");
    gate.open();
    let run = bg.finish();
    run.assert_code(1);
    let res = result(&run);
    assert_eq!(res["result"], "failed", "{run}");
    let reason = res["reason"].as_str().unwrap();
    println!("seal: {reason}");
    assert!(
        reason.contains("server: ferry: decoded on the host, its SHA-256 is not the file's"),
        "{run}"
    );
    // Nothing switched, nothing left half-made.
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    assert_eq!(
        release_dirs(user, "app"),
        vec![v1.trim_start_matches("releases/")]
    );
}

#[test]
fn a_changed_file_goes_as_a_delta_from_the_current_release() {
    let user = "ferry87";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    let program = std::fs::read(demo_bin()).unwrap();
    p.write("server", &program);
    p.config(&config(user, "always", &[("server", "0755")]));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);

    // The next build: a longer path string early in the file moves every later byte, and a
    // constant changed further on (what a rebuild elsewhere or a one-line change does).
    let mut next = program.clone();
    next.splice(4096..4096, b"/home/another-builder".iter().copied());
    let at = next.len() * 3 / 4;
    next[at] ^= 0x5a;
    p.write("server", &next);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let up = uploaded(&run);
    let (bytes, sent) = (
        up["bytes"].as_u64().unwrap(),
        up["sent_bytes"].as_u64().unwrap(),
    );
    println!("delta upload: {bytes} bytes of files, {sent} sent");
    assert!(
        up["message"]
            .as_str()
            .unwrap()
            .contains("1 file(s) as a delta"),
        "{run}"
    );
    assert!(sent < bytes / 50, "{bytes} -> {sent}\n{run}");
    let release = format!("releases/{}", result(&run)["release"].as_str().unwrap());
    assert_eq!(current(user, "app"), release);
    assert_eq!(started_from(user, "app"), release);
    let on_host = r.ssh(
        user,
        "cd ~/.local/share/ferry/app/current && sha256sum < server | cut -c1-64 && stat -c %a server && ls -A .ferry",
    );
    let mut lines = on_host.lines();
    assert_eq!(lines.next(), Some(sha256(&next).as_str()));
    assert_eq!(lines.next(), Some("755"));
    assert!(!on_host.contains("incoming"), "{on_host}");

    // Without the local copy of what the host has (another machine, a fresh CI runner): the
    // whole file, compressed.
    next[at] ^= 0x01;
    p.write("server", &next);
    let run = p.ferry_env(
        &["--output", "json", "deploy"],
        &[("FERRY_BLOB_CACHE", "0")],
    );
    run.assert_code(0);
    let up = uploaded(&run);
    let message = up["message"].as_str().unwrap();
    assert!(
        message.contains("sent gzip-compressed") && !message.contains("delta"),
        "{run}"
    );
    let on_host = r.ssh(user, "sha256sum < ~/.local/share/ferry/app/current/server");
    assert!(on_host.starts_with(&sha256(&next)), "{on_host}");
}

/// bench/wanproxy.py in front of the remote's sshd: `delay_ms` each way, 100 Mbit/s. Killed
/// when dropped.
pub(crate) struct DelayingProxy {
    pub(crate) port: u16,
    child: std::process::Child,
}

impl DelayingProxy {
    fn start(delay_ms: u32) -> DelayingProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        DelayingProxy::start_on(port, delay_ms)
    }

    /// [`DelayingProxy::start`] listening on `port`.
    pub(crate) fn start_on(port: u16, delay_ms: u32) -> DelayingProxy {
        let r = remote();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/wanproxy.py");
        let mut child = std::process::Command::new("python3")
            .args([script, &port.to_string(), &r.host, &r.port.to_string()])
            .args([delay_ms.to_string(), "100".to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs bench/wanproxy.py");
        // It prints "ready" once it listens.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.contains("ready"), "wanproxy: {line:?}");
        DelayingProxy { port, child }
    }
}

impl Drop for DelayingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn auto_sends_plain_on_loopback_and_compressed_over_a_distant_link() {
    let user = "ferry111";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    std::fs::copy(demo_bin(), p.path("server")).unwrap();
    let files = [("server", "0755")];
    // Unset `compress` is `auto`.
    let plain = config(user, "auto", &files).replace("compress = \"auto\"\n", "");
    p.config(&plain);
    let run = p.ferry(&["--output", "json", "-v", "deploy"]);
    run.assert_code(0);
    let up = uploaded(&run);
    assert_eq!(up["sent_bytes"], up["bytes"], "loopback goes plain\n{run}");

    // The same host 40 ms away (20 ms each way): the next build goes compressed (no delta:
    // the blob cache is off), and arrives whole.
    let proxy = DelayingProxy::start(20);
    let kh = p.path("known_hosts.proxy");
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    std::fs::write(
        &kh,
        pinned.replace(
            &format!("[{}]:{} ", r.host, r.port),
            &format!("[{}]:{} ", r.host, proxy.port),
        ),
    )
    .unwrap();
    let far = plain
        .replace(
            &format!("port = {}\n", r.port),
            &format!("port = {}\n", proxy.port),
        )
        .replace(
            &r.known_hosts.display().to_string(),
            &kh.display().to_string(),
        );
    p.config(&far);
    let mut next = std::fs::read(p.path("server")).unwrap();
    next.extend_from_slice(b"next build");
    p.write("server", &next);
    let run = p.ferry_env(
        &["--output", "json", "-v", "deploy"],
        &[("FERRY_BLOB_CACHE", "0")],
    );
    run.assert_code(0);
    let up = uploaded(&run);
    let (bytes, sent) = (
        up["bytes"].as_u64().unwrap(),
        up["sent_bytes"].as_u64().unwrap(),
    );
    println!("40 ms away: {bytes} bytes of files, {sent} sent");
    assert!(sent < bytes * 2 / 3, "{bytes} -> {sent}\n{run}");
    let out = r.ssh(
        user,
        "sha256sum < ~/.local/share/ferry/app/current/server | cut -c1-64",
    );
    assert_eq!(out.trim(), sha256(&next));
}

/// A big file of the same size as the current release's copy: when its first MiB differs
/// from the host's copy (hashed there by the probe), its upload starts without waiting for
/// its whole hash; when it begins the same, it is hashed first and reused if identical.
/// Either way the host gets exactly the local bytes.
#[test]
fn a_same_size_file_that_begins_otherwise_is_uploaded_without_waiting_for_its_hash() {
    let user = "ferry128";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.config(&config(user, "never", &[("data", "0644")]));
    let deploy = |bytes: &[u8]| {
        p.write("data", bytes);
        let run = p.ferry_env(
            &["--output", "json", "-v", "deploy"],
            &[("FERRY_BLOB_CACHE", "0")],
        );
        run.assert_code(0);
        let on_host = r.ssh(
            user,
            "sha256sum < ~/.local/share/ferry/app/current/data | cut -c1-64",
        );
        assert_eq!(on_host.trim(), sha256(bytes), "{run}");
        run
    };
    let size = 6 * 1024 * 1024;
    let one = random(size);
    deploy(&one);

    // Another file of that size: it begins otherwise.
    let two: Vec<u8> = one.iter().map(|b| b ^ 0x5a).collect();
    let run = deploy(&two);
    assert!(
        run.stderr
            .contains("data: hash known: false, upload certain: true"),
        "{run}"
    );
    assert_eq!(uploaded(&run)["bytes"], size as u64, "{run}");

    // The same start, another last byte: hashed first (not certain), then uploaded.
    let mut three = two.clone();
    *three.last_mut().unwrap() ^= 1;
    let run = deploy(&three);
    assert!(run.stderr.contains("upload certain: false"), "{run}");
    assert_eq!(uploaded(&run)["bytes"], size as u64, "{run}");

    // Identical: reused, nothing uploaded (a --force deploy makes a new release).
    let run = p.ferry_env(
        &["--output", "json", "-v", "deploy", "--force"],
        &[("FERRY_BLOB_CACHE", "0")],
    );
    run.assert_code(0);
    assert!(run.stderr.contains("upload certain: false"), "{run}");
    let reused = run.events("step").into_iter().any(|e| e["step"] == "reuse");
    assert!(reused, "{run}");
}
