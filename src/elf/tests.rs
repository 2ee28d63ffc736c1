//! The ELF reader on real binaries and on fixtures made from them, the judge, and the
//! probe's shell text run by a real `sh`.

use super::*;
use std::path::Path;

/// A copy of `from` with its bytes changed by `patch`, in `dir`.
fn patched(dir: &Path, from: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(from).unwrap();
    patch(&mut bytes);
    let to = dir.join(name);
    std::fs::write(&to, bytes).unwrap();
    to
}

/// Replace every `from` by `to` (same length) in `bytes`; how many were replaced.
pub(crate) fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
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

/// The highest `GLIBC_2.NN` name in a binary, as bytes.
fn a_glibc_name(bytes: &[u8]) -> Vec<u8> {
    let needs = b"GLIBC_2.";
    (0..bytes.len() - needs.len() - 2)
        .filter(|&i| &bytes[i..i + needs.len()] == needs)
        .map(|i| bytes[i..i + needs.len() + 2].to_vec())
        .filter(|n| n[needs.len()..].iter().all(u8::is_ascii_digit))
        .max()
        .expect("a GLIBC_2.NN version name")
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[test]
fn the_test_binary_and_bin_true_are_x86_64_executables_needing_glibc() {
    for path in [std::env::current_exe().unwrap(), PathBuf::from("/bin/true")] {
        let n = read(&path).unwrap().expect("an ELF executable");
        assert_eq!(n.kind, Kind::Executable, "{}", path.display());
        assert_eq!(n.machine.name(), Some("x86_64"));
        assert_eq!(n.machine.runs_on("x86_64"), Some(true));
        assert_eq!(n.machine.runs_on("aarch64"), Some(false));
        assert_eq!(n.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(n.needed.iter().any(|l| l == "libc.so.6"), "{:?}", n.needed);
        let glibc = n.glibc.clone().expect("GLIBC_ versions");
        assert!(glibc >= Version(vec![2, 2, 5]) && glibc <= Version(vec![2, 36]));
        // Built and run here (glibc 2.36): nothing against it on a host like this one.
        let host = HostFacts {
            arch: Some("x86_64".into()),
            libc: Some(Libc::Glibc(Version(vec![2, 36]))),
            ..HostFacts::default()
        };
        assert_eq!(judge(&n, &host), vec![]);
    }
}

#[test]
fn non_elf_files_and_object_files_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\nexec true\n").unwrap();
    assert_eq!(read(&script).unwrap(), None);
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, "\x7fE").unwrap();
    assert_eq!(read(&tiny).unwrap(), None);
    // An ELF header of type ET_REL (an object file).
    let obj = dir.path().join("a.o");
    std::fs::write(&obj, minimal_elf64(1, 62)).unwrap();
    assert_eq!(read(&obj).unwrap(), None);
    // ELF magic, then garbage: refused (it could not run).
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"\x7fELF\x02\x01\x01garbage").unwrap();
    assert!(read(&bad).unwrap_err().to_string().contains("not valid"));
}

/// A minimal valid little-endian ELF64 header (no program or section headers): a static
/// binary of `e_machine` when `e_type` is 2 (ET_EXEC).
fn minimal_elf64(e_type: u16, e_machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&e_type.to_le_bytes());
    h[18..20].copy_from_slice(&e_machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h
}

#[test]
fn a_static_aarch64_header_is_refused_on_x86_64_and_passes_the_interpreter_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arm");
    std::fs::write(&path, minimal_elf64(2, 183)).unwrap();
    let n = read(&path).unwrap().expect("an ELF executable");
    assert_eq!(n.machine.name(), Some("aarch64"));
    assert_eq!(n.interp, None, "static: no interpreter");
    assert_eq!((n.glibc.clone(), n.needed.clone()), (None, vec![]));
    let mut host = HostFacts {
        arch: Some("aarch64".into()),
        ..HostFacts::default()
    };
    assert_eq!(judge(&n, &host), vec![], "static aarch64 on aarch64 runs");
    host.arch = Some("x86_64".into());
    let problems = judge(&n, &host);
    assert_eq!(
        problems,
        vec![Problem::Arch {
            binary: n.machine,
            host: "x86_64".into()
        }]
    );
    let text = problems[0].describe(n.kind, Some("x86_64"));
    assert!(
        text.contains("ELF executable for aarch64, and the host is x86_64")
            && text.contains("--target x86_64-unknown-linux-gnu"),
        "{text}"
    );
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[test]
fn a_real_binary_patched_to_aarch64_and_to_glibc_2_99_is_read_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let arm = patched(dir.path(), Path::new("/bin/true"), "arm", |b| {
        b[18..20].copy_from_slice(&183u16.to_le_bytes())
    });
    let n = read(&arm).unwrap().unwrap();
    assert_eq!(n.machine.to_string(), "aarch64");
    let newer = patched(dir.path(), Path::new("/bin/true"), "newer", |b| {
        let name = a_glibc_name(b);
        assert!(replace_all(b, &name, b"GLIBC_2.99") > 0);
    });
    let n = read(&newer).unwrap().unwrap();
    assert_eq!(n.glibc, Some(Version(vec![2, 99])));
    let host = HostFacts {
        arch: Some("x86_64".into()),
        libc: Some(Libc::Glibc(Version(vec![2, 36]))),
        ..HostFacts::default()
    };
    let binaries = [Binary {
        dest: "bin/true".into(),
        source: newer.clone(),
        needs: n,
    }];
    let refusal = refusal(&binaries, &host, "web1").expect("refused");
    assert!(
        refusal.starts_with("bin/true (from ")
            && refusal
                .contains("cannot run on web1: it needs GLIBC_2.99 and the host has glibc 2.36")
            && refusal.contains("older base")
            && refusal.contains("x86_64-unknown-linux-musl"),
        "{refusal}"
    );
}

fn needs() -> ElfNeeds {
    ElfNeeds {
        kind: Kind::Executable,
        machine: Machine {
            e_machine: 62,
            bits64: true,
            big_endian: false,
        },
        interp: Some("/lib64/ld-linux-x86-64.so.2".into()),
        glibc: Some(Version(vec![2, 34])),
        glibcxx: Some(Version(vec![3, 4, 30])),
        needed: vec![
            "libc.so.6".into(),
            "libstdc++.so.6".into(),
            "libfoo.so.1".into(),
        ],
        runpath: vec!["$ORIGIN/../lib".into(), "/opt/foo/lib".into()],
    }
}

#[test]
fn the_judge_names_each_missing_piece_and_nothing_it_was_not_told() {
    let n = needs();
    assert_eq!(judge(&n, &HostFacts::default()), vec![], "nothing known");
    let mut host = HostFacts {
        arch: Some("x86_64".into()),
        libc: Some(Libc::Glibc(Version(vec![2, 31]))),
        glibcxx: Some(Version(vec![3, 4, 28])),
        ..HostFacts::default()
    };
    host.paths
        .insert("/lib64/ld-linux-x86-64.so.2".into(), false);
    host.libs.insert("libc.so.6".into(), true);
    host.libs.insert("libfoo.so.1".into(), false);
    assert_eq!(
        judge(&n, &host),
        vec![
            Problem::Interp {
                path: "/lib64/ld-linux-x86-64.so.2".into()
            },
            Problem::Glibc {
                needs: Version(vec![2, 34]),
                host: Version(vec![2, 31])
            },
            Problem::Glibcxx {
                needs: Version(vec![3, 4, 30]),
                host: Some(Version(vec![3, 4, 28]))
            },
            Problem::Library {
                name: "libfoo.so.1".into()
            },
        ]
    );
    host.libc = Some(Libc::Musl("1.2.4".into()));
    assert!(judge(&n, &host).contains(&Problem::NotGlibc {
        needs: Version(vec![2, 34]),
        host: Libc::Musl("1.2.4".into())
    }));
    // Versions compare number by number: 2.4 < 2.34, 2.2.5 < 2.3.
    assert!(Version::parse("2.4") < Version::parse("2.34"));
    assert!(Version::parse("2.2.5") < Version::parse("2.3"));
}

#[test]
fn machines_run_where_they_should() {
    let m = |e, b64, be| Machine {
        e_machine: e,
        bits64: b64,
        big_endian: be,
    };
    assert_eq!(m(3, false, false).runs_on("x86_64"), Some(true));
    assert_eq!(m(62, true, false).runs_on("i686"), Some(false));
    assert_eq!(m(40, false, false).runs_on("armv7l"), Some(true));
    assert_eq!(m(40, false, false).runs_on("x86_64"), Some(false));
    assert_eq!(m(183, true, false).runs_on("arm64"), Some(true));
    assert_eq!(m(183, true, true).runs_on("aarch64"), Some(false));
    assert_eq!(
        m(8, false, true).runs_on("x86_64"),
        None,
        "mips: not judged"
    );
    assert_eq!(
        m(8, false, true).to_string(),
        "e_machine 8 (32-bit, big-endian)"
    );
}

#[test]
fn the_probe_lines_parse_into_host_facts() {
    let mut f = HostFacts::default();
    for line in [
        "arch=x86_64",
        "libc=glibc 2.36",
        "elf.path=yes /lib64/ld-linux-x86-64.so.2",
        "elf.lib=no libfoo.so.1",
        "elf.glibcxx=GLIBCXX_3.4 GLIBCXX_3.4.30 GLIBCXX_3.4.9 ",
        "current=x",
    ] {
        let (k, v) = line.split_once('=').unwrap();
        assert_eq!(parse_line(&mut f, k, v), k != "current", "{line}");
    }
    assert_eq!(f.arch.as_deref(), Some("x86_64"));
    assert_eq!(f.libc, Some(Libc::Glibc(Version(vec![2, 36]))));
    assert_eq!(f.glibcxx, Some(Version(vec![3, 4, 30])));
    assert_eq!(f.paths.get("/lib64/ld-linux-x86-64.so.2"), Some(&true));
    assert_eq!(f.libs.get("libfoo.so.1"), Some(&false));
    let musl = "musl libc (x86_64) Version 1.2.4 ";
    assert_eq!(parse_libc(musl), Some(Libc::Musl("1.2.4".into())));
    assert_eq!(parse_libc(""), None);
}

/// The probe's text, run by a real `sh` here: this machine's loader and libc are found, a
/// library nobody has is not, one the release ships is not asked about.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[test]
fn the_probe_script_finds_what_this_machine_has() {
    let mut n = needs();
    n.glibcxx = None;
    let binaries = [Binary {
        dest: "bin/app".into(),
        source: "app".into(),
        needs: n,
    }];
    let files = ["bin/app".to_string(), "lib/libstdc++.so.6".to_string()];
    let q = Query::of(&binaries, &files);
    assert!(!q.libs.contains("libstdc++.so.6"), "shipped by the release");
    assert_eq!(q.dirs.iter().collect::<Vec<_>>(), ["/opt/foo/lib"]);
    let script = format!("{FACTS_SCRIPT}{}", q.script());
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut facts = HostFacts::default();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (k, v) = line.split_once('=').unwrap();
        assert!(parse_line(&mut facts, k, v), "{line}");
    }
    assert_eq!(facts.arch.as_deref(), Some("x86_64"));
    assert!(matches!(facts.libc, Some(Libc::Glibc(_))), "{facts:?}");
    assert_eq!(facts.paths.get("/lib64/ld-linux-x86-64.so.2"), Some(&true));
    assert_eq!(facts.libs.get("libc.so.6"), Some(&true));
    assert_eq!(facts.libs.get("libfoo.so.1"), Some(&false));
    assert_eq!(Query::default().script(), "");
}
