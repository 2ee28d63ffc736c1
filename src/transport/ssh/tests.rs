use super::*;

#[test]
fn the_sftp_pipeline_deepens_with_the_round_trip() {
    let ms = |n| writes_in_flight(Duration::from_millis(n));
    // A near host (loopback: the key exchange takes 20-35 ms, so ~7-12 ms): 512 KiB.
    assert_eq!(ms(0), 16);
    assert_eq!(ms(12), 16);
    // 20 ms: 800 KiB; 40 ms: 1.6 MiB; beyond: the 2 MiB of OpenSSH's window.
    assert_eq!(ms(20), 26);
    assert_eq!(ms(40), 52);
    assert_eq!(ms(60), 64);
    assert_eq!(ms(400), 64);
}
use std::io::ErrorKind;

fn io(kind: ErrorKind) -> russh::Error {
    russh::Error::IO(std::io::Error::from(kind))
}

#[test]
fn a_handshake_the_server_cut_short_is_retried() {
    // sshd past MaxStartups closes the accepted socket: a reset when our banner was
    // already sent, an EOF (russh: Disconnect) when not.
    assert_eq!(
        retryable(&io(ErrorKind::ConnectionReset)),
        Some("handshake reset by the server")
    );
    for e in [
        io(ErrorKind::UnexpectedEof),
        io(ErrorKind::BrokenPipe),
        russh::Error::Disconnect,
        russh::Error::HUP,
    ] {
        assert_eq!(
            retryable(&e),
            Some("the server closed the connection during the handshake"),
            "{e:?}"
        );
    }
    assert!(retryable(&io(ErrorKind::ConnectionAborted)).is_some());
}

#[test]
fn host_key_and_protocol_failures_are_never_retried() {
    for e in [
        // What russh returns when check_server_key refused the key.
        russh::Error::UnknownKey,
        russh::Error::KeyChanged { line: 3 },
        russh::Error::WrongServerSig,
        russh::Error::NotAuthenticated,
        russh::Error::NoAuthMethod,
        russh::Error::Version,
        russh::Error::Kex,
        russh::Error::PacketAuth,
        io(ErrorKind::PermissionDenied),
        io(ErrorKind::ConnectionRefused),
        io(ErrorKind::TimedOut),
    ] {
        assert_eq!(retryable(&e), None, "{e:?}");
    }
}

#[test]
fn retry_delays_grow_are_jittered_and_bounded() {
    let low: Vec<u64> = (1..=6)
        .map(|a| retry_delay(a, 0.0).as_millis() as u64)
        .collect();
    assert_eq!(low, vec![100, 200, 400, 800, 1600, 1600]);
    assert_eq!(retry_delay(2, 1.0), Duration::from_millis(400));
    assert_eq!(retry_delay(2, 0.5), Duration::from_millis(300));
    // Out-of-range input stays within bounds.
    assert_eq!(retry_delay(0, 7.0), Duration::from_millis(200));
    assert_eq!(retry_delay(u32::MAX, -1.0), Duration::from_millis(1600));
    // Every retry of a connect fits in the default 10 s connect_timeout.
    let worst: Duration = (1..HANDSHAKE_TRIES).map(|a| retry_delay(a, 1.0)).sum();
    assert!(worst <= Duration::from_secs(3), "{worst:?}");
}

#[test]
fn jitter_is_a_fraction_and_varies() {
    let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
    assert!(
        samples.iter().all(|j| (0.0..1.0).contains(j)),
        "{samples:?}"
    );
    assert!(samples.iter().any(|j| *j != samples[0]), "{samples:?}");
}

#[test]
fn a_lost_session_is_told_apart_from_a_refused_request() {
    for e in [
        russh::Error::SendError,
        russh::Error::RecvError,
        russh::Error::Disconnect,
        russh::Error::HUP,
        russh::Error::KeepaliveTimeout,
        io(ErrorKind::ConnectionReset),
    ] {
        assert!(transport_gone(&e), "{e:?}");
    }
    for e in [
        russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::AdministrativelyProhibited),
        russh::Error::RequestDenied,
        russh::Error::WrongChannel,
    ] {
        assert!(!transport_gone(&e), "{e:?}");
    }
}

#[test]
fn commands_are_abbreviated_in_messages() {
    assert_eq!(abbreviate("true"), "true");
    assert_eq!(abbreviate("sh -s\necho hi"), "sh -s...");
    let long = "x".repeat(100);
    assert_eq!(abbreviate(&long), format!("{}...", "x".repeat(80)));
    assert_eq!(abbreviate("ünï"), "ünï");
}

#[test]
fn connection_lost_names_host_and_what_was_under_way() {
    let e = Error::ConnectionLost {
        host: "web1".into(),
        during: "running `systemctl --user restart app.service`".into(),
    };
    assert_eq!(
        e.to_string(),
        "web1: the connection was lost while running `systemctl --user restart app.service`"
    );
    assert_eq!(e.exit_code(), crate::exit::Exit::Connection);
    assert!(
        e.hint()
            .unwrap()
            .contains("run the same ferry command again")
    );
}

#[test]
fn aes_gcm_first_with_aes_instructions() {
    assert_eq!(cipher_order(true)[0], russh::cipher::AES_128_GCM);
    assert_eq!(cipher_order(false)[0], russh::cipher::CHACHA20_POLY1305);
    // Only AEAD or CTR ciphers; never CBC or none.
    for c in cipher_order(true) {
        let n = c.as_ref();
        assert!(
            n.contains("gcm") || n.contains("ctr") || n.contains("chacha"),
            "{n}"
        );
    }
}

fn host_with(ssh: crate::config::SshOptions) -> Host {
    Host {
        name: "h".into(),
        address: "127.0.0.1".into(),
        user: "u".into(),
        port: 22,
        identity: None,
        known_hosts: "kh".into(),
        host_key_policy: crate::config::HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(1),
        compress: Default::default(),
        proxy_jump: None,
        identities: Vec::new(),
        ssh,
        arch: None,
    }
}

/// ServerAliveInterval/CountMax from the OpenSSH config set the keepalive (a frozen server is
/// given up after about interval x count); unset, ferry's bound of 10 s x 3.
#[test]
fn keepalive_follows_server_alive_options() {
    let set = crate::config::SshOptions {
        server_alive_interval: Some(Duration::from_secs(2)),
        server_alive_count_max: 2,
        ..Default::default()
    };
    assert_eq!(keepalive(&host_with(set)), (Duration::from_secs(2), 2));
    let c = client_config(
        Vec::new(),
        false,
        &host_with(crate::config::SshOptions {
            server_alive_interval: Some(Duration::from_secs(5)),
            server_alive_count_max: 0,
            ..Default::default()
        }),
    );
    assert_eq!(c.keepalive_interval, Some(Duration::from_secs(5)));
    assert_eq!(c.keepalive_max, 1);
    assert_eq!(
        keepalive(&host_with(Default::default())),
        (Duration::from_secs(10), 3)
    );
}

/// IdentityAgent picks the agent: a path, `$VAR`, `SSH_AUTH_SOCK`, `none`.
#[test]
fn identity_agent_picks_the_socket() {
    let agent = |v: Option<&str>| {
        auth::agent_socket(&host_with(crate::config::SshOptions {
            identity_agent: v.map(str::to_string),
            ..Default::default()
        }))
    };
    assert_eq!(agent(Some("none")), None);
    assert_eq!(agent(Some("/run/a.sock")), Some("/run/a.sock".into()));
    // PATH is set in every test environment.
    assert_eq!(
        agent(Some("$PATH")),
        std::env::var_os("PATH").map(std::path::PathBuf::from)
    );
    assert_eq!(
        agent(Some("SSH_AUTH_SOCK")),
        std::env::var_os("SSH_AUTH_SOCK").map(std::path::PathBuf::from)
    );
}

#[test]
fn the_quickest_channel_open_is_kept() {
    let c = super::Counters::default();
    assert_eq!(
        c.quickest_open_us
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    c.opened(Duration::from_micros(900));
    c.opened(Duration::from_millis(30));
    c.opened(Duration::from_micros(300));
    c.opened(Duration::from_micros(500));
    assert_eq!(
        c.quickest_open_us
            .load(std::sync::atomic::Ordering::Relaxed),
        301
    );
}
