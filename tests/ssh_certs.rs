//! Certificates on the real remote, with OpenSSH's own tools as the oracle: a user certificate
//! (sshd trusting its CA through `cert-authority` in authorized_keys) from a file beside the
//! key, from `CertificateFile`, and held by an ssh-agent; a host certificate (sshd's
//! `HostCertificate`) trusted through `@cert-authority` in known_hosts, and refused when
//! another CA is trusted. Each case also runs `ssh` with the same files and expects the same
//! verdict.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{OwnSshd, Project, host_table, remote};

fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
}

/// A new ed25519 key at `path` (and `path.pub`).
fn new_key(path: &Path) {
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "t",
        "-f",
        path.to_str().unwrap(),
    ]);
}

/// Sign `key.pub` with `ca` (user certificate for `principal` unless `host`): KEY-cert.pub.
fn sign(ca: &Path, key: &Path, principal: &str, host: bool) -> PathBuf {
    let public = format!("{}.pub", key.display());
    let mut args = vec!["-q", "-s", ca.to_str().unwrap(), "-I", "ferry-test"];
    if host {
        args.push("-h");
    }
    args.extend(["-n", principal, "-V", "-5m:+1h", &public]);
    keygen(&args);
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// authorized_keys of `user`: the suite's key, and `cert-authority` for `ca` (the key `user`
/// logs in with elsewhere keeps working; the keys signed by `ca` get in only with their
/// certificate).
fn trust_user_ca(user: &str, ca: &Path) {
    let r = remote();
    let main = std::fs::read_to_string(format!("{}.pub", r.key.display())).unwrap();
    let ca_pub = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
    let keys = format!("{}\ncert-authority {}\n", main.trim(), ca_pub.trim());
    let out = r.root_stdin(
        &format!("cat > /home/{user}/.ssh/authorized_keys && chown {user}: /home/{user}/.ssh/authorized_keys && chmod 600 /home/{user}/.ssh/authorized_keys"),
        keys.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
}

/// `ssh` with the same identity and known_hosts: does it log in?
fn ssh_logs_in(user: &str, port: u16, known_hosts: &Path, extra: &[&str]) -> bool {
    let r = remote();
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "IdentitiesOnly=yes", "-p", &port.to_string()])
        .args(extra)
        .arg(format!("{user}@{}", r.host))
        .arg("true")
        .env_remove("SSH_AUTH_SOCK")
        .status()
        .unwrap()
        .success()
}

fn doctor(p: &Project) -> crate::support::Run {
    p.ferry(&["-v", "doctor"])
}

#[test]
fn a_user_certificate_from_a_file_logs_in_where_its_plain_key_does_not() {
    let user = "ferry112";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    let (ca, key) = (p.path("user_ca"), p.path("id_cert"));
    new_key(&ca);
    new_key(&key);
    trust_user_ca(user, &ca);
    let table =
        host_table("web1", user).replace(&r.key.display().to_string(), key.to_str().unwrap());
    p.config(&table);

    // The plain key alone is refused, by ssh and by ferry.
    let kh = r.known_hosts.clone();
    assert!(!ssh_logs_in(
        user,
        r.port,
        &kh,
        &["-i", key.to_str().unwrap()]
    ));
    let run = doctor(&p);
    assert_eq!(run.code, 3, "{run}");

    // KEY-cert.pub beside the key (as ssh -i loads it): in.
    let cert = sign(&ca, &key, user, false);
    assert!(ssh_logs_in(
        user,
        r.port,
        &kh,
        &["-i", key.to_str().unwrap()]
    ));
    let run = doctor(&p);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr.contains("certificate"),
        "authenticated with the certificate\n{run}"
    );

    // The certificate elsewhere, named by CertificateFile in ~/.ssh/config.
    let moved = p.path("elsewhere-cert.pub");
    std::fs::rename(&cert, &moved).unwrap();
    assert_eq!(doctor(&p).code, 3, "without the certificate");
    std::fs::create_dir_all(p.path(".ssh")).unwrap();
    std::fs::write(
        p.path(".ssh/config"),
        format!("Host *\n  CertificateFile {}\n", moved.display()),
    )
    .unwrap();
    assert!(ssh_logs_in(
        user,
        r.port,
        &kh,
        &[
            "-i",
            key.to_str().unwrap(),
            "-o",
            &format!("CertificateFile={}", moved.display())
        ]
    ));
    let run = doctor(&p);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn a_certificate_held_by_the_agent_logs_in() {
    let user = "ferry113";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    let (ca, key) = (p.path("user_ca"), p.path("agent_key"));
    new_key(&ca);
    new_key(&key);
    trust_user_ca(user, &ca);
    sign(&ca, &key, user, false);
    let sock = p.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a", sock.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !sock.exists() {
        std::thread::yield_now();
    }
    // ssh-add loads the key and KEY-cert.pub beside it; then the files go.
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("CERT"),
        "{listed:?}"
    );
    for f in ["agent_key", "agent_key.pub", "agent_key-cert.pub"] {
        std::fs::remove_file(p.path(f)).unwrap();
    }
    let identity = format!("identity = \"{}\"\n", r.key.display());
    p.config(&host_table("web1", user).replace(&identity, ""));
    std::fs::create_dir_all(p.path(".ssh")).unwrap();
    std::fs::write(
        p.path(".ssh/config"),
        format!("Host *\n  IdentityAgent {}\n", sock.display()),
    )
    .unwrap();
    let run = doctor(&p);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("ssh-agent certificate"), "{run}");
}

#[test]
fn a_host_certificate_is_trusted_through_cert_authority_and_only_from_that_ca() {
    let user = "ferry114";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    let (host_ca, other_ca) = (p.path("host_ca"), p.path("other_ca"));
    new_key(&host_ca);
    new_key(&other_ca);
    // The remote's own host key, certified by host_ca for the address ferry connects to.
    let out = r.root("cat /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(out.status.success());
    std::fs::write(p.path("host.pub"), &out.stdout).unwrap();
    let cert = sign(&host_ca, &p.path("host"), &r.host, true);
    let cert_on_host = format!("/run/ferry-test-hostcert-{user}.pub");
    let out = r.root_stdin(
        &format!("cat > {cert_on_host}"),
        &std::fs::read(&cert).unwrap(),
    );
    assert!(out.status.success());
    let sshd = OwnSshd::start_with(&format!("-o HostCertificate={cert_on_host}"));
    let table = sshd.host_table(&p, "web1", user);
    let kh = p.path("known_hosts.ca");
    let ca_line = |ca: &Path| {
        format!(
            "@cert-authority [{}]:{} {}",
            r.host,
            sshd.port,
            std::fs::read_to_string(format!("{}.pub", ca.display()))
                .unwrap()
                .trim()
        )
    };
    // Only the CA line: no plain key of the host is known.
    std::fs::write(&kh, format!("{}\n", ca_line(&host_ca))).unwrap();
    let table = table.replace(
        &sshd.known_hosts(&p).display().to_string(),
        &kh.display().to_string(),
    );
    p.config(&table);
    let key = ["-i", r.key.to_str().unwrap()];
    assert!(ssh_logs_in(user, sshd.port, &kh, &key));
    let run = doctor(&p);
    assert_eq!(run.code, 0, "{run}");
    // doctor's host key line names the CA that vouched for it.
    assert!(
        run.stdout
            .contains("(certificate signed by CA ssh-ed25519 SHA256:"),
        "{run}"
    );

    // Another CA trusted: the certificate proves nothing, and its plain key is unknown.
    std::fs::write(&kh, format!("{}\n", ca_line(&other_ca))).unwrap();
    assert!(!ssh_logs_in(user, sshd.port, &kh, &key));
    let run = doctor(&p);
    assert_eq!(run.code, 3, "{run}");
    assert!(run.stdout.contains("is not known"), "{run}");
    let _ = r.root(&format!("rm -f {cert_on_host}"));
}

#[test]
fn a_binary_krl_as_revoked_host_keys_is_refused_saying_so() {
    let user = "ferry115";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    // A KRL (ssh-keygen -k) revoking the remote's host key: ssh refuses the host.
    let out = r.root("cat /etc/ssh/ssh_host_ed25519_key.pub");
    std::fs::write(p.path("host.pub"), &out.stdout).unwrap();
    let krl = p.path("revoked.krl");
    keygen(&[
        "-q",
        "-k",
        "-f",
        krl.to_str().unwrap(),
        p.path("host.pub").to_str().unwrap(),
    ]);
    let key = ["-i", r.key.to_str().unwrap(), "-o"];
    let revoked = format!("RevokedHostKeys={}", krl.display());
    let mut args = key.to_vec();
    args.push(&revoked);
    assert!(!ssh_logs_in(user, r.port, &r.known_hosts, &args));
    p.config(&host_table("web1", user));
    std::fs::create_dir_all(p.path(".ssh")).unwrap();
    std::fs::write(
        p.path(".ssh/config"),
        format!("Host *\n  RevokedHostKeys {}\n", krl.display()),
    )
    .unwrap();
    let run = doctor(&p);
    assert_eq!(run.code, 3, "{run}");
    assert!(run.stdout.contains("binary key revocation list"), "{run}");
}
