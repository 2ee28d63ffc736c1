//! Host certificates made with `ssh-keygen -s ca -h` (OpenSSH 9.2), valid 2026-01-01 to
//! 2036-01-01 unless named otherwise.

use super::*;
use russh::keys::ssh_key::Certificate;

const CA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAIrcn0uIfZA23uoLccIeMFwQaTm8NrGBMMjxf9yXGLD";
const OTHER_CA: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTuYiPf3yh0hx4TEhmO/K7VP6WgEqqyHHkajHlaHWzI";
/// Principals `web.example` and `*.internal`.
const VALID: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIIpwsXjAnPWtOcQ7x7OUr6GkxSSuc59gL9tU3Qdk3KgRAAAAIEZtlp9lEnLHQ1DPWWjMNTiHNaMfzDjHa5pX0wglcOe0AAAAAAAAAAAAAAACAAAAA3dlYgAAAB0AAAALd2ViLmV4YW1wbGUAAAAKKi5pbnRlcm5hbAAAAABpVbkAAAAAAHwkXwAAAAAAAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIAIrcn0uIfZA23uoLccIeMFwQaTm8NrGBMMjxf9yXGLDAAAAUwAAAAtzc2gtZWQyNTUxOQAAAED5GSH2ANCF4SjMOhDG8KA51pBzrhs4H4P6I7+n9yJyA+p4wJcTHGldXtDrFXZmEZps/gZ3CRR1TVjbEAMj4n0I";
/// Valid 2020-01-01 to 2021-01-01.
const EXPIRED: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIIk7BEBwhvrqtyJb5mBOT/59YTT2q8T9BLj4MEsfKC53AAAAIEZtlp9lEnLHQ1DPWWjMNTiHNaMfzDjHa5pX0wglcOe0AAAAAAAAAAAAAAACAAAAA29sZAAAAA8AAAALd2ViLmV4YW1wbGUAAAAAXgvhAAAAAABf7mYAAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACACK3J9LiH2QNt7qC3HCHjBcEGk5vDaxgTDI8X/clxiwwAAAFMAAAALc3NoLWVkMjU1MTkAAABALmG6YlsdkKWMkzHnssJdD1oh4MU1WRfqnGZ4BSYuwN65ZWcf/Ap+f+tiHEB2NVdhW8kpYDKM66pCS6aujIAxBA==";
/// A user certificate (no `-h`) of the same key.
const USER: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIHmYJYyN9s7RwzeZSxF5+t3HfR3tqLuK6lDettfvGHIKAAAAIEZtlp9lEnLHQ1DPWWjMNTiHNaMfzDjHa5pX0wglcOe0AAAAAAAAAAAAAAABAAAABHVzZXIAAAAPAAAAC3dlYi5leGFtcGxlAAAAAGlVuQAAAAAAfCRfAAAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIAIrcn0uIfZA23uoLccIeMFwQaTm8NrGBMMjxf9yXGLDAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEDsldmUdjgg6a/VokMoyj548i+k2Eh+QAjIV6I1tL6wC3S1autgXzex81ogFeXInAw3Ugnu4cmUBxF7sMECGR4O";
/// Signed by OTHER_CA.
const FOREIGN: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIIRpVqDfunRhBlhxoMYqGyQb+XcGLJyPmBDb2XduZ7FcAAAAIEZtlp9lEnLHQ1DPWWjMNTiHNaMfzDjHa5pX0wglcOe0AAAAAAAAAAAAAAACAAAAB2ZvcmVpZ24AAAAPAAAAC3dlYi5leGFtcGxlAAAAAGlVuQAAAAAAfCRfAAAAAAAAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgxO5iI9/fKHSHHhMSGY78rtU/paASqrIceRqMeVodbMgAAABTAAAAC3NzaC1lZDI1NTE5AAAAQNs4fqtgyVQ7drWe1WT1cYyjJ9HZHE9/6Qp4EBtxgXIXXVJ9uXwATycI1BHJoEN7ccy83exCBo+esL5d6QSwXwg=";
/// No principals: any host.
const ANY_HOST: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIHjOz0w8tSelRe8Jofw+ui+euV0yYIdfj5AqjPcTyn58AAAAIEZtlp9lEnLHQ1DPWWjMNTiHNaMfzDjHa5pX0wglcOe0AAAAAAAAAAAAAAACAAAAA2FueQAAAAAAAAAAaVW5AAAAAAB8JF8AAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACACK3J9LiH2QNt7qC3HCHjBcEGk5vDaxgTDI8X/clxiwwAAAFMAAAALc3NoLWVkMjU1MTkAAABAy0ZF6JMHfuH3VwnpDptUrh/lbHNGlKXxYwyr6SaODlDtEPQp2qAeOPs6seoD6i2G5WZIjjZ0ukwEGJ/gz3UBBQ==";

/// 2030-01-01T00:00:00Z.
const NOW: u64 = 1_893_456_000;

fn cert(s: &str) -> Certificate {
    Certificate::from_openssh(s).unwrap()
}

fn trusting(ca: &str) -> String {
    format!("# comment\n@cert-authority [web.example]:2222,*.internal {ca}\n")
}

fn reason(v: CertVerdict) -> String {
    match v {
        CertVerdict::Invalid { reason, .. } => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_certificate_from_a_trusted_ca_for_this_host_is_trusted() {
    let kh = trusting(CA);
    let v = judge(&cert(VALID), &["", &kh], "web.example", 2222, NOW);
    assert!(
        matches!(
            v,
            CertVerdict::Trusted {
                file: 1,
                line: 2,
                ..
            }
        ),
        "{v:?}"
    );
    // A wildcard principal, and a certificate without principals.
    assert!(matches!(
        judge(&cert(VALID), &[&kh], "db.internal", 22, NOW),
        CertVerdict::Trusted { .. }
    ));
    assert!(matches!(
        judge(&cert(ANY_HOST), &[&kh], "web.example", 2222, NOW),
        CertVerdict::Trusted { .. }
    ));
}

#[test]
fn a_ca_not_trusted_for_this_host_leaves_the_plain_key_to_be_checked() {
    let kh = trusting(CA);
    // Another CA signed it; the CA line is for other hosts (port 22); no CA line at all.
    for (c, host, port, files) in [
        (FOREIGN, "web.example", 2222, vec![kh.as_str()]),
        (VALID, "web.example", 22, vec![kh.as_str()]),
        (VALID, "web.example", 2222, vec![""]),
    ] {
        assert_eq!(
            judge(&cert(c), &files, host, port, NOW),
            CertVerdict::NoAuthority
        );
    }
    // A plain key line with the CA's key is not a @cert-authority line.
    let plain = format!("[web.example]:2222 {CA}\n");
    assert_eq!(
        judge(&cert(VALID), &[&plain], "web.example", 2222, NOW),
        CertVerdict::NoAuthority
    );
    // Trusting only the other CA.
    assert_eq!(
        judge(
            &cert(VALID),
            &[&trusting(OTHER_CA)],
            "web.example",
            2222,
            NOW
        ),
        CertVerdict::NoAuthority
    );
}

#[test]
fn a_trusted_ca_does_not_make_an_invalid_certificate_valid() {
    let kh = trusting(CA);
    let at = |c: &str, host: &str, now: u64| reason(judge(&cert(c), &[&kh], host, 2222, now));
    assert!(at(EXPIRED, "web.example", NOW).contains("expired at 2021-01-01T00:00:00Z"));
    assert!(
        at(VALID, "web.example", 1_700_000_000).contains("not valid before 2026-01-01T00:00:00Z")
    );
    assert!(at(USER, "web.example", NOW).contains("user certificate"));
    assert_eq!(
        reason(judge(
            &cert(VALID),
            &[&trusting(CA).replace("*.internal", "api.example")],
            "api.example",
            22,
            NOW
        )),
        "its principals (web.example, *.internal) do not include api.example"
    );
    // A signature that does not verify (its last byte changed).
    let mut bytes = cert(VALID).to_bytes().unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let forged = Certificate::from_bytes(&bytes).unwrap();
    assert!(reason(judge(&forged, &[&kh], "web.example", 2222, NOW)).contains("signature"));
}
