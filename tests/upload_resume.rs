//! Uploads cut off in the middle (ferry killed, or the link lost, while it sends a large
//! file) resume at the next deploy from what the host already has, and only when that is the
//! start of the file: what ends up on the host is the file, whatever was left there.

use crate::faults::Bg;
use crate::faults::{current, result, started_from, started_from_unit};
use crate::support::{Project, Run, remote};
use crate::upload::{DelayingProxy, config, sha256, uploaded};

/// The file's size: 128 MiB (what ferry had in flight when killed, lost with it, stays a small
/// part of it), or `FERRY_RESUME_MIB` MiB.
fn size() -> usize {
    std::env::var("FERRY_RESUME_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
        << 20
}

/// Incompressible bytes from `seed` (xorshift, eight bytes a step).
fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The size of each `data.bin` the service's staging directories hold on the host.
fn partial_sizes(user: &str) -> Vec<u64> {
    remote()
        .ssh(
            user,
            "for f in ~/.local/share/ferry/app/releases/.*.partial/data.bin; do [ -f \"$f\" ] && stat -c %s \"$f\"; done; true",
        )
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// A deploy killed once it has written half of `data.bin`: returns the size it left on the host.
fn killed_at_half(p: &Project, user: &str, n: usize) -> u64 {
    let half = (n / 2).to_string();
    let run = p.ferry_env(
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_UPLOAD_ABORT_AT", &half)],
    );
    assert!(
        run.code != 0 && run.stderr.contains("FERRY_FAULT_UPLOAD_ABORT_AT: aborting"),
        "ferry did not stop in the upload\n{run}"
    );
    let left = partial_sizes(user);
    assert_eq!(left.len(), 1, "one partial file: {left:?}");
    assert!(
        left[0] > 0 && left[0] <= n as u64 / 2 + (1 << 20),
        "{left:?}"
    );
    left[0]
}

/// The next deploy (it waits for the killed one's lock to die with its session).
fn deploy(p: &Project) -> Run {
    let run = p.ferry(&["--output", "json", "deploy", "--lock-wait", "60s"]);
    run.assert_code(0);
    run
}

/// Every JSON event of `run` is one docs/events.schema.json allows (`resumed_bytes` included).
fn assert_events_valid(run: &Run) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    for e in run.json() {
        let errors: Vec<String> = v.iter_errors(&e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{e}\n{errors:#?}");
    }
}

/// What the host serves once `run` is done: the file's SHA-256 in the current release, the
/// release the service started from, and nothing left staged.
fn assert_deployed(user: &str, run: &Run, bytes: &[u8]) {
    let release = format!("releases/{}", result(run)["release"].as_str().unwrap());
    assert_eq!(current(user, "app"), release, "{run}");
    assert_eq!(started_from(user, "app"), release, "{run}");
    let on_host = remote().ssh(
        user,
        "sha256sum < ~/.local/share/ferry/app/current/data.bin | cut -c1-64",
    );
    assert_eq!(on_host.trim(), sha256(bytes), "{run}");
    assert_eq!(partial_sizes(user), Vec::<u64>::new());
}

#[test]
fn an_upload_cut_off_resumes_from_what_the_host_has_unless_that_changed() {
    let user = "ferry103";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    let n = size();
    let data = random(n, 1);
    p.write("data.bin", &data);
    p.config(&config(user, "never", &[("data.bin", "0644")]));

    // Cut at half, then resumed: only what the host lacks is sent.
    let left = killed_at_half(&p, user, n);
    let run = deploy(&p);
    let up = uploaded(&run);
    let (sent, resumed) = (
        up["sent_bytes"].as_u64().unwrap(),
        up["resumed_bytes"].as_u64().unwrap_or(0),
    );
    println!(
        "resumed upload of {n} bytes cut at half: {resumed} resumed, {sent} sent ({:.1} % of the file)",
        sent as f64 * 100.0 / n as f64
    );
    assert_eq!(resumed, left, "{run}");
    assert_eq!(sent + resumed, n as u64, "{run}");
    assert!(sent * 100 <= n as u64 * 55, "{sent} of {n} sent\n{run}");
    assert!(run.stderr.contains("to resume from"), "{run}");
    assert_events_valid(&run);
    assert_deployed(user, &run, &data);

    // The next build, cut at half; then what it left on the host is altered: the whole file
    // is sent again, and the host has the file, not what was left.
    let next = random(n, 2);
    p.write("data.bin", &next);
    killed_at_half(&p, user, n);
    r.ssh(
        user,
        "for f in ~/.local/share/ferry/app/releases/.*.partial/data.bin; do printf X | dd of=\"$f\" bs=1 seek=4096 conv=notrunc status=none; done",
    );
    let run = deploy(&p);
    let up = uploaded(&run);
    assert_eq!(up["sent_bytes"].as_u64(), Some(n as u64), "{run}");
    assert!(up.get("resumed_bytes").is_none(), "{run}");
    assert_deployed(user, &run, &next);

    // The link lost in the middle of the upload (the proxy in front of the host killed):
    // ferry says so, and the next deploy, over the direct link, resumes.
    let third = random(n, 3);
    p.write("data.bin", &third);
    let direct = config(user, "never", &[("data.bin", "0644")]);
    let proxy = DelayingProxy::start_on(19600, 1);
    let kh = p.path("known_hosts.proxy");
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    let at = |port: u16| format!("[{}]:{port} ", r.host);
    std::fs::write(&kh, pinned.replace(&at(r.port), &at(proxy.port))).unwrap();
    p.config(
        &direct
            .replace(
                &format!("port = {}\n", r.port),
                &format!("port = {}\n", proxy.port),
            )
            .replace(
                &r.known_hosts.display().to_string(),
                &kh.display().to_string(),
            ),
    );
    let mut bg = Bg::spawn(&p, &["--output", "json", "deploy"], &[]);
    bg.wait_for_line("uploading 1 file(s)");
    let mut tries = 0;
    while partial_sizes(user)
        .first()
        .is_none_or(|s| *s < n as u64 / 3)
    {
        tries += 1;
        assert!(tries < 3000, "the upload never got to a third of the file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(proxy);
    let cut = bg.finish();
    assert!(
        cut.code != 0
            && result(&cut)["reason"]
                .as_str()
                .unwrap()
                .contains("the connection was lost"),
        "{cut}"
    );
    let left = partial_sizes(user);
    assert_eq!(left.len(), 1, "{left:?}\n{cut}");
    p.config(&direct);
    let run = deploy(&p);
    let up = uploaded(&run);
    println!(
        "after the lost link: {} of {n} bytes resumed, the rest sent",
        left[0]
    );
    assert_eq!(up["resumed_bytes"].as_u64(), Some(left[0]), "{run}");
    assert_eq!(up["sent_bytes"].as_u64(), Some(n as u64 - left[0]), "{run}");
    assert_deployed(user, &run, &third);
}
