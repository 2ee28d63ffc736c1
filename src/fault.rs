//! Fault injection for the test suite, driven by environment variables that are unset in
//! normal use: `FERRY_FAULT_AT` (die at a step), `FERRY_FAULT_PAUSE` (wait at a step) and
//! `FERRY_FAULT_CLOCK_OFFSET` (this machine's clock off by that many seconds),
//! `FERRY_FAULT_CONFIRM_PAUSE` (the host's confirm script waits) and
//! `FERRY_FAULT_UPLOAD_ABORT_AT` (die in the middle of an upload).

use std::sync::OnceLock;
use std::time::Duration;

/// Where the notices below are written: set by the reporting layer (the only code that
/// prints) when its `Reporter` is made, before any command runs.
static NOTICE: OnceLock<fn(&str)> = OnceLock::new();

/// Fault notices go to `write` from now on (the first call wins).
pub fn notices_to(write: fn(&str)) {
    let _ = NOTICE.set(write);
}

/// A notice a test waits for, written where [`notices_to`] said.
fn notice(line: &str) {
    if let Some(write) = NOTICE.get() {
        write(line);
    }
}

/// Fault injection for the test suite: with `FERRY_FAULT_AT=NAME` in the environment, ferry
/// dies at once (abort: no cleanup, like `kill -9`) just before the step (or `rollback`) of
/// that name. Unset in normal use.
pub fn point(name: &str) {
    if std::env::var_os("FERRY_FAULT_AT").is_some_and(|v| v == name) {
        notice(&format!("FERRY_FAULT_AT={name}: aborting"));
        std::process::abort();
    }
}

/// Fault injection for the test suite: with `FERRY_FAULT_PAUSE=STEP:FILE` (several pairs
/// separated by `,`), ferry says
/// "FERRY_FAULT_PAUSE=STEP: waiting for FILE" on stderr just before that step, then waits
/// until the local file FILE exists (so a test can change the host at a known point, e.g.
/// fill its disk between the plan and the upload). Unset in normal use.
pub async fn pause(step: &str) {
    let Some(file) = gate(step) else {
        return;
    };
    notice(&format!("FERRY_FAULT_PAUSE={step}: waiting for {file}"));
    // Bounded: a test that forgets to release it fails instead of hanging.
    for _ in 0..3000 {
        if std::path::Path::new(&file).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The gate file of `step` in `FERRY_FAULT_PAUSE` (`STEP:FILE`, several separated by `,`).
fn gate(step: &str) -> Option<String> {
    let v = std::env::var_os("FERRY_FAULT_PAUSE")?;
    v.to_string_lossy()
        .split(',')
        .filter_map(|g| g.split_once(':'))
        .find(|(name, _)| *name == step)
        .map(|(_, file)| file.to_string())
}

/// [`pause`] on a blocking thread, also released when `stop` is set: the background
/// hash pauses after its first chunk with `FERRY_FAULT_PAUSE=hash:FILE`, so that a test's
/// upload takes it over in the middle of the file.
pub fn pause_blocking(step: &str, stop: &std::sync::atomic::AtomicBool) {
    let Some(file) = gate(step) else {
        return;
    };
    notice(&format!("FERRY_FAULT_PAUSE={step}: waiting for {file}"));
    for _ in 0..3000 {
        if std::path::Path::new(&file).exists() || stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This machine's clock, as ferry reads it for release ids and history times: with
/// `FERRY_FAULT_CLOCK_OFFSET=SECONDS` (may be negative) in the environment, that far off
/// (a client whose clock is wrong). Unset in normal use.
pub fn now() -> std::time::SystemTime {
    let now = std::time::SystemTime::now();
    let offset: i64 = std::env::var("FERRY_FAULT_CLOCK_OFFSET")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let by = Duration::from_secs(offset.unsigned_abs());
    if offset >= 0 { now + by } else { now - by }
}

/// With `FERRY_FAULT_CONFIRM_PAUSE=SECONDS`, the host's confirm script waits that long after
/// disarming the self-revert and before recording the release (ferry says
/// "FERRY_FAULT_CONFIRM_PAUSE: ..." on stderr as it sends it), so that a test can kill ferry
/// in the middle of it. Unset in normal use.
pub fn confirm_pause() -> Option<u64> {
    let secs = std::env::var("FERRY_FAULT_CONFIRM_PAUSE")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    notice(&format!(
        "FERRY_FAULT_CONFIRM_PAUSE: the confirm script waits {secs}s before recording"
    ));
    Some(secs)
}

/// With `FERRY_FAULT_UPLOAD_ABORT_AT=BYTES`, the byte of a file's upload at which ferry dies
/// at once (abort, like `kill -9`), once it has written that many bytes of the file (a cut in
/// the middle of an upload, which the next deploy resumes). Unset in normal use.
pub fn upload_abort_at() -> Option<u64> {
    std::env::var("FERRY_FAULT_UPLOAD_ABORT_AT")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Die at once when `written` bytes of a file reached `at` (from [`upload_abort_at`]).
pub fn upload_abort(written: u64, at: Option<u64>) {
    if at.is_some_and(|at| written >= at) {
        notice(&format!(
            "FERRY_FAULT_UPLOAD_ABORT_AT: aborting after {written} bytes of the file"
        ));
        std::process::abort();
    }
}
