//! Binaries checked against the host before the switch: an ELF file the host cannot run (built
//! for another architecture, or needing a newer GLIBC_ symbol version than the host's glibc)
//! refuses the deploy of that host before anything is uploaded or switched, and the old
//! release keeps serving.

use crate::support::{Project, demo_bin, host_table, remote};

/// The demo server, run from a `run` table on `port`, with a health check there.
fn project(user: &str, port: u16) -> Project {
    let p = Project::new();
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.write("message.txt", "release one\n");
    p.config(&format!(
        "{}[services.app]\nstart_timeout = \"20s\"\nsettle_time = \"0.5s\"\n\n\
         [services.app.run]\ncommand = \"bin/ferry-demo --listen 127.0.0.1:{port} --message share/message.txt\"\n\n\
         [services.app.health]\nhttp = \"http://127.0.0.1:{port}/healthz\"\ntimeout = \"10s\"\ninterval = \"200ms\"\n\n\
         [[services.app.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.app.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n",
        host_table("web1", user)
    ));
    p
}

/// The release directories on the host, and where `current` points.
fn releases(user: &str) -> (String, String) {
    let r = remote();
    (
        r.ssh(user, "ls ~/.local/share/ferry/app/releases"),
        r.ssh(user, "readlink ~/.local/share/ferry/app/current"),
    )
}

/// Deploy the real (x86_64) demo and check it serves; what the host holds then.
fn deploy_first(p: &Project, user: &str, port: u16) -> (String, String) {
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert_eq!(
        remote().http_get(port, "/").as_deref(),
        Some("release one\n"),
        "{run}"
    );
    releases(user)
}

/// Every JSON event of `run` is one docs/events.schema.json allows.
fn assert_events_valid(run: &crate::support::Run) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    for e in run.json() {
        let errors: Vec<String> = v.iter_errors(&e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{e}\n{errors:#?}");
    }
}

/// Replace every `from` by `to` (same length) in `bytes`; how many were replaced.
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

/// A new release whose binary is `patch`ed; its dry run and its deploy are refused for that
/// host (exit 1, outcome `refused`, why `binary`) with a message that says `expect`, and the
/// old release still serves, untouched.
fn refused_before_the_switch(
    user: &str,
    port: u16,
    patch: impl FnOnce(&mut Vec<u8>),
    expect: &[&str],
) {
    let r = remote();
    r.reset(user);
    let p = project(user, port);
    let before = deploy_first(&p, user, port);
    let started = r.http_get(port, "/version").expect("the demo answers");

    let mut bin = std::fs::read(p.path("ferry-demo")).unwrap();
    patch(&mut bin);
    p.write("ferry-demo", bin);
    p.write("message.txt", "release two\n");

    // The dry run shows the refusal (the probe runs there too).
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(1);
    let plan = &dry.events("plan")[0];
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("plan has no steps\n{dry}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["lock", "refuse"], "{dry}");
    assert_eq!(plan["steps"][1]["why"], "binary", "{dry}");
    assert_events_valid(&dry);

    let run = p.ferry(&["deploy"]);
    run.assert_code(1);
    for e in expect {
        assert!(run.stderr.contains(e), "{e:?} not said\n{run}");
    }
    assert!(run.stderr.contains("web1: app: REFUSED: "), "{run}");

    let json = p.ferry(&["--output", "json", "deploy"]);
    json.assert_code(1);
    assert_events_valid(&json);
    let result = &json.events("result")[0];
    assert_eq!(result["result"], "refused", "{json}");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("bin/ferry-demo (from "),
        "{json}"
    );

    // Nothing was uploaded or switched: the same releases, the same process serving.
    assert_eq!(releases(user), before, "the host is as it was");
    assert_eq!(r.http_get(port, "/").as_deref(), Some("release one\n"));
    assert_eq!(r.http_get(port, "/version"), Some(started), "not restarted");
    assert_eq!(
        r.ssh(
            user,
            "ls -a ~/.local/share/ferry/app/releases | grep -c partial || true"
        )
        .trim(),
        "0",
        "no staging directory left"
    );
}

#[test]
fn an_aarch64_binary_is_refused_before_the_switch() {
    refused_before_the_switch(
        "ferry69",
        19690,
        // e_machine = EM_AARCH64: what `cargo build --target aarch64-unknown-linux-gnu` makes.
        |b| b[18..20].copy_from_slice(&183u16.to_le_bytes()),
        &[
            "bin/ferry-demo (from ",
            "cannot run on web1",
            "ELF executable for aarch64, and the host is x86_64 (uname -m)",
            "--target x86_64-unknown-linux-gnu",
        ],
    );
}

#[test]
fn a_binary_needing_glibc_2_99_is_refused_before_the_switch() {
    // The remote's own glibc (2.36 on bookworm, 2.41 on trixie), as `getconf` says.
    let libc = crate::support::remote().ssh("ferry70", "getconf GNU_LIBC_VERSION");
    let said = format!("it needs GLIBC_2.99 and the host has {}", libc.trim());
    refused_before_the_switch(
        "ferry70",
        19691,
        // Its newest GLIBC_2.NN version need renamed GLIBC_2.99 (in .dynstr, read through
        // .gnu.version_r): what a build on a newer distribution than the host's makes.
        |b| {
            let prefix = b"GLIBC_2.";
            let newest = (0..b.len() - prefix.len() - 2)
                .filter(|&i| &b[i..i + prefix.len()] == prefix)
                .map(|i| b[i..i + prefix.len() + 2].to_vec())
                .filter(|n| n[prefix.len()..].iter().all(u8::is_ascii_digit))
                .max()
                .expect("the demo needs a GLIBC_2.NN version");
            assert!(replace_all(b, &newest, b"GLIBC_2.99") > 0);
        },
        &[
            "bin/ferry-demo (from ",
            "cannot run on web1",
            &said,
            "older base",
            "musl",
        ],
    );
}
