//! Local preparation: read and hash the files and unit files of a release, and say who deploys.
//!
//! Everything here happens before any connection, so bad input fails before a host changes.

use std::sync::Arc;

use crate::config::{Config, Service};
use crate::error::{Error, Result};
use crate::plan::{self, LocalFile, LocalRelease, LocalUnit, Origin};
use crate::release;

/// Hash a whole file by streaming it (memory stays bounded), on a thread of its own: ring's
/// SHA-256 (SHA-NI or AVX2 assembly) and plain reads, no async file I/O in the way.
async fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = crate::digest::ReadBuf::new(1 << 20);
        let mut size = 0u64;
        loop {
            let n = f.read(buf.space())?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(buf.filled(n));
        }
        Ok((size, plan::hex(h.finish().as_ref())))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A `template = true` file: read into memory (UTF-8 text, at most
/// [`crate::config::TEMPLATE_FILE_MAX`] bytes); rendered per host later.
async fn read_template_file(service: &Service, f: &crate::config::FileSpec) -> Result<LocalFile> {
    let what = || format!("service {}: {}", service.name, f.source.display());
    let size = tokio::fs::metadata(&f.source)
        .await
        .map_err(|e| Error::Usage(format!("{}: cannot read it: {e}", what())))?
        .len();
    if size > crate::config::TEMPLATE_FILE_MAX {
        return Err(Error::Usage(format!(
            "{}: {size} bytes is too large for `template = true` (at most {} bytes): render only small text files such as configs",
            what(),
            crate::config::TEMPLATE_FILE_MAX
        )));
    }
    let content = tokio::fs::read(&f.source)
        .await
        .map_err(|e| Error::Usage(format!("{}: cannot read it: {e}", what())))?;
    if std::str::from_utf8(&content).is_err() {
        return Err(Error::Usage(format!(
            "{}: `template = true` needs UTF-8 text; remove `template = true` for a binary file",
            what()
        )));
    }
    Ok(LocalFile {
        source: f.source.clone(),
        dest: f.dest.clone(),
        mode: f.mode,
        size: content.len() as u64,
        sha256: crate::digest::sha256_hex(&content),
        content: Some(content),
    })
}

/// How far a file's background hash has got.
// One per file, behind a mutex: the size of the running variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Progress {
    /// The first `offset` bytes are hashed.
    Running {
        ctx: ring::digest::Context,
        offset: u64,
    },
    /// An upload took the hash over: it hashes the rest as it sends it.
    Taken,
    /// Hashed to the end.
    Done,
}

/// A background hash and the flag that asks it to stop at its next chunk (an upload takes it
/// over: the flag, then the lock, so the hasher's tight loop cannot keep the lock from it).
struct HashState {
    stop: std::sync::atomic::AtomicBool,
    progress: std::sync::Mutex<Progress>,
}

impl HashState {
    fn new() -> HashState {
        HashState {
            stop: std::sync::atomic::AtomicBool::new(false),
            progress: std::sync::Mutex::new(Progress::Running {
                ctx: ring::digest::Context::new(&ring::digest::SHA256),
                offset: 0,
            }),
        }
    }

    /// Stop the background hash and take what it has done.
    fn take(&self) -> Progress {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut progress = self.progress.lock().expect("hash progress");
        match std::mem::replace(&mut *progress, Progress::Taken) {
            Progress::Done => {
                *progress = Progress::Done;
                Progress::Done
            }
            p => p,
        }
    }
}

/// A background hash's outcome: None when an upload took it over first.
type Job = futures::future::Shared<
    futures::future::BoxFuture<'static, Option<std::result::Result<(u64, String), String>>>,
>;

/// A file whose hash the cache did not know: hashed in the background from the start.
struct Pending {
    index: usize,
    path: std::path::PathBuf,
    /// Its metadata before it was hashed.
    before: std::fs::Metadata,
    state: Arc<HashState>,
    job: Job,
}

/// Does the local file at `path` (`size` bytes, at `dest`) begin otherwise than the current
/// release's copy on the host (see [`plan::prefix`])? Then the two differ and its upload is
/// certain. False when the host sent no prefix or the local start cannot be read.
async fn starts_otherwise(
    path: &std::path::Path,
    dest: &str,
    size: u64,
    remote: &plan::RemoteState,
) -> bool {
    let Some(theirs) = remote.current_prefixes.get(dest) else {
        return false;
    };
    if size < plan::prefix::PREFIX_MIN {
        return false;
    }
    let path = path.to_path_buf();
    let ours = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        let mut start = Vec::with_capacity(plan::prefix::PREFIX_BYTES as usize);
        std::fs::File::open(&path)?
            .take(plan::prefix::PREFIX_BYTES)
            .read_to_end(&mut start)?;
        Ok(crate::digest::sha256_hex(&start))
    })
    .await;
    matches!(ours, Ok(Ok(ours)) if &ours != theirs)
}

/// Hash `path` from the start until the end, or until an upload takes the hash over
/// ([`Progress::Taken`]): then None. Runs on a thread of its own; reads are plain reads, a
/// chunk at a time under the lock, so a take-over waits for one chunk at most.
fn hash_until_taken(
    path: &std::path::Path,
    state: &HashState,
) -> Option<std::io::Result<(u64, String)>> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let mut buf = crate::digest::ReadBuf::new(1 << 20);
    loop {
        if state.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let mut p = state.progress.lock().expect("hash progress");
        let Progress::Running { ctx, offset } = &mut *p else {
            return None;
        };
        let n = match f.read(buf.space()) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if n == 0 {
            let size = *offset;
            let Progress::Running { ctx, .. } = std::mem::replace(&mut *p, Progress::Done) else {
                unreachable!("running until now")
            };
            return Some(Ok((size, plan::hex(ctx.finish().as_ref()))));
        }
        let full = n == buf.space().len();
        ctx.update(buf.filled(n));
        // (A test's pause: after the first chunk of a file with more to come.)
        let first = *offset == 0 && full;
        *offset += n as u64;
        drop(p);
        if first {
            crate::fault::pause_blocking("hash", &state.stop);
        }
    }
}

/// A file a host uploads whatever its hash (its current release has no file of that size at
/// that dest): its hash is learned from the upload, which reads the file once.
pub struct Deferred {
    pub index: usize,
    pub dest: String,
    /// The background hash so far (context, bytes hashed), continued by the upload; None: the
    /// upload hashes the whole file.
    pub resume: Option<(ring::digest::Context, u64)>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("index", &self.index)
            .field("dest", &self.dest)
            .field("resume", &self.resume.as_ref().map(|(_, n)| n))
            .finish()
    }
}

/// A release read locally. Everything is known at once (and checked: files exist and can be
/// opened, unit files are text, templates render) but the hashes of the files the hash cache
/// does not know: those are computed in the background while the hosts are connected to and
/// read under their lock. A host's plan waits for them ([`Local::for_host`]), except for the
/// files it uploads whatever their content: their upload takes the hash over where the
/// background hash got to, and the plan's release id follows once they are sent.
pub struct Local {
    /// The release, with the hashes still being computed left empty.
    pub skeleton: Arc<LocalRelease>,
    service: String,
    pending: Vec<Pending>,
    /// The hash of each file as first learned (background hash, upload, or a fresh hash), which
    /// every host must agree with: a file that changes during a deploy stops it.
    agreed: Vec<std::sync::OnceLock<(u64, String)>>,
    cache: std::sync::Mutex<crate::prepare::hash_cache::HashCache>,
    full: tokio::sync::OnceCell<Arc<LocalRelease>>,
}

impl Drop for Local {
    /// The hashes learned since the last save are kept for the next deploy.
    fn drop(&mut self) {
        if let Ok(cache) = self.cache.get_mut() {
            cache.save();
        }
    }
}

/// A file that is not what was planned and hashed, or what another host was sent.
pub fn changed(path: &std::path::Path) -> Error {
    Error::Local(format!(
        "{} changed while it was being deployed (it is not the content that was planned and hashed); nothing went live: run the deploy again once it is stable",
        path.display()
    ))
}

impl Local {
    fn pending(&self, index: usize) -> &Pending {
        // In the order of the files (see `start_hashing`).
        let at = self
            .pending
            .binary_search_by_key(&index, |p| p.index)
            .expect("a pending file");
        &self.pending[at]
    }

    /// Record the hash of file `p`, or check it against the one recorded first.
    fn agree(&self, p: &Pending, size: u64, sha256: String) -> Result<(u64, String)> {
        let slot = &self.agreed[p.index];
        if slot.set((size, sha256.clone())).is_ok() {
            // Learned first here: remembered for the next deploy (once, not per host).
            let mut cache = self.cache.lock().expect("hash cache");
            cache.put(&p.path, &p.before, &sha256);
            cache.save_due(size);
        }
        let agreed = slot.get().expect("set above or before");
        if agreed.1 != sha256 || agreed.0 != size {
            return Err(changed(&p.path));
        }
        Ok(agreed.clone())
    }

    /// The hash of file `p`: its background hash, or a fresh one when an upload took that over.
    async fn hash(&self, p: &Pending) -> Result<(u64, String)> {
        if let Some(h) = self.agreed[p.index].get() {
            return Ok(h.clone());
        }
        let hashed = match p.job.clone().await {
            Some(h) => h,
            None => sha256_file(&p.path).await.map_err(|e| e.to_string()),
        };
        let (size, sha256) = hashed.map_err(|e| {
            Error::Usage(format!(
                "service {}: cannot read {}: {e}",
                self.service,
                p.path.display()
            ))
        })?;
        self.agree(p, size, sha256)
    }

    /// The release with every hash (computed once, shared by every host).
    pub async fn full(&self) -> Result<Arc<LocalRelease>> {
        self.full
            .get_or_try_init(|| async {
                let mut full = (*self.skeleton).clone();
                for p in &self.pending {
                    let (size, sha256) = self.hash(p).await?;
                    full.files[p.index].size = size;
                    full.files[p.index].sha256 = sha256;
                }
                Ok(Arc::new(full))
            })
            .await
            .cloned()
    }

    /// The release as the plan of a host whose state is `remote` needs it: every hash, except,
    /// when `may_defer`, those of the files the host uploads whatever their content (see
    /// [`plan::upload_certain`]) and whose hash is not known yet. Those are left empty and
    /// returned: their upload hashes what it sends, and [`Local::learned`] records it.
    pub async fn for_host(
        &self,
        remote: &plan::RemoteState,
        may_defer: bool,
    ) -> Result<(LocalRelease, Vec<Deferred>)> {
        let mut view = (*self.skeleton).clone();
        let mut deferred = Vec::new();
        let uploads = plan::UploadCertain::of(remote);
        for p in &self.pending {
            let f = &view.files[p.index];
            let known = self.agreed[p.index].get().is_some();
            let certain = uploads.certain(&f.dest, f.size)
                || (!known
                    && may_defer
                    && starts_otherwise(&p.path, &f.dest, f.size, remote).await);
            tracing::debug!(
                "{}: hash known: {known}, upload certain: {certain}, may defer: {may_defer}",
                f.dest
            );
            if !known && may_defer && certain {
                // Continued by the upload if the file cannot have changed unseen since it was
                // hashed; a finished hash is simply used.
                let taken = match p.state.take() {
                    Progress::Running { ctx, offset } => Some(
                        crate::prepare::hash_cache::settled(&p.before).then_some((ctx, offset)),
                    ),
                    Progress::Taken => Some(None),
                    Progress::Done => None,
                };
                let Some(resume) = taken else {
                    let (size, sha256) = self.hash(p).await?;
                    view.files[p.index].size = size;
                    view.files[p.index].sha256 = sha256;
                    continue;
                };
                deferred.push(Deferred {
                    index: p.index,
                    dest: f.dest.clone(),
                    resume,
                });
                continue;
            }
            let (size, sha256) = self.hash(p).await?;
            view.files[p.index].size = size;
            view.files[p.index].sha256 = sha256;
        }
        Ok((view, deferred))
    }

    /// The upload of deferred file `index` sent `size` bytes hashing to `sha256` (continuing
    /// the background hash when `resumed`; `after`: the file's metadata once read). Err when
    /// the file changed meanwhile: a continued hash is only sound for the file that was
    /// hashed, and every host must get the same content.
    pub fn learned(
        &self,
        index: usize,
        resumed: bool,
        size: u64,
        sha256: String,
        after: Option<&std::fs::Metadata>,
    ) -> Result<(u64, String)> {
        let p = self.pending(index);
        if resumed && !after.is_some_and(|a| crate::prepare::hash_cache::unchanged(&p.before, a)) {
            return Err(changed(&p.path));
        }
        self.agree(p, size, sha256)
    }
}

/// Read the local side of a release and start hashing its files; resolve its env (see
/// [`crate::release::env`]).
pub async fn prepare(service: &Service) -> Result<Local> {
    let env = crate::release::env::resolve(service).await?;
    let cache = crate::prepare::hash_cache::HashCache::load();
    let read = read_files(service, &cache).await?;
    let pending = start_hashing(read.to_hash);
    let mut units = listed_units(service, env.is_some()).await?;
    units.extend(generated_units(service, env.is_some()));
    let local = LocalRelease {
        files: read.files,
        units,
        env,
        instances: Vec::new(),
        binaries: read.binaries,
    };
    // Templates are rendered for every host now, so an undefined name stops before any
    // connection.
    crate::prepare::template::check(service, &local)?;
    let agreed = (0..local.files.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    Ok(Local {
        skeleton: Arc::new(local),
        service: service.name.clone(),
        pending,
        agreed,
        cache: std::sync::Mutex::new(cache),
        full: tokio::sync::OnceCell::new(),
    })
}

/// The service's files as read before any hashing.
struct ReadFiles {
    /// In the order of the config; a file the cache does not know has no hash yet.
    files: Vec<LocalFile>,
    /// The files the cache does not know: (index, path, metadata before hashing).
    to_hash: Vec<(usize, std::path::PathBuf, std::fs::Metadata)>,
    /// The ELF binaries among them, with what they need of the host.
    binaries: Vec<crate::elf::Binary>,
}

/// Each file of the service: a template read whole, any other checked readable, its ELF
/// headers read and its hash taken from the cache when it knows the file.
async fn read_files(
    service: &Service,
    cache: &crate::prepare::hash_cache::HashCache,
) -> Result<ReadFiles> {
    let mut files = Vec::new();
    let mut to_hash = Vec::new();
    let mut binaries = Vec::new();
    for (i, f) in service.files.iter().enumerate() {
        if f.template {
            files.push(read_template_file(service, f).await?);
            continue;
        }
        let cannot_read = |e: std::io::Error| {
            Error::Usage(format!(
                "service {}: cannot read {}: {e}",
                service.name,
                f.source.display()
            ))
        };
        let meta = std::fs::metadata(&f.source).map_err(cannot_read)?;
        if !meta.is_file() {
            return Err(cannot_read(std::io::Error::other(
                "not a regular file (a file's source must be a file)",
            )));
        }
        std::fs::File::open(&f.source).map_err(cannot_read)?;
        // Its ELF headers only (a few KiB), whatever the hash cache knows.
        if let Some(needs) = crate::elf::read(&f.source).map_err(cannot_read)? {
            binaries.push(crate::elf::Binary {
                dest: f.dest.clone(),
                source: f.source.clone(),
                needs,
            });
        }
        let sha256 = match cache.get(&f.source) {
            Some((_, known)) => known,
            None => {
                to_hash.push((i, f.source.clone(), meta.clone()));
                String::new()
            }
        };
        files.push(LocalFile {
            source: f.source.clone(),
            dest: f.dest.clone(),
            mode: f.mode,
            size: meta.len(),
            sha256,
            content: None,
        });
    }
    Ok(ReadFiles {
        files,
        to_hash,
        binaries,
    })
}

/// The hashes of the files the cache does not know, started in the background: several at
/// once (a thread each), each from the start of its file.
fn start_hashing(to_hash: Vec<(usize, std::path::PathBuf, std::fs::Metadata)>) -> Vec<Pending> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = Arc::new(tokio::sync::Semaphore::new(threads));
    to_hash
        .into_iter()
        .map(|(index, path, before)| {
            let state = Arc::new(HashState::new());
            let (p, slots, at) = (state.clone(), slots.clone(), path.clone());
            let task = tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                tokio::task::spawn_blocking(move || hash_until_taken(&at, &p)).await
            });
            let job = async move {
                match task.await {
                    Ok(Ok(Some(hashed))) => Some(hashed.map_err(|e| e.to_string())),
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) | Err(e) => Some(Err(e.to_string())),
                }
            };
            Pending {
                index,
                path,
                before,
                state,
                job: futures::FutureExt::shared(futures::FutureExt::boxed(job)),
            }
        })
        .collect()
}

/// The unit files listed in `units`, read (UTF-8 text) and, with an env, made to read it.
async fn listed_units(service: &Service, has_env: bool) -> Result<Vec<LocalUnit>> {
    let mut units = Vec::new();
    for u in &service.units {
        let mut content = tokio::fs::read(&u.source).await.map_err(|e| {
            Error::Usage(format!(
                "service {}: cannot read unit file {}: {e}",
                service.name,
                u.source.display()
            ))
        })?;
        if std::str::from_utf8(&content).is_err() {
            return Err(Error::Usage(format!(
                "service {}: unit file {} is not UTF-8 text",
                service.name,
                u.source.display()
            )));
        }
        // Services read the release's env file (see crate::release::env); the colours of a
        // switch read their own release's, and their port.
        if service.switch.is_some() && u.name == crate::systemd::switch::template(&service.name) {
            content = crate::systemd::switch::template_with_env(&content, &service.name, has_env);
        } else if has_env && u.name.ends_with(".service") {
            content = crate::release::env::unit_with_env_file(&content, &service.name);
        }
        let sha256 = crate::digest::sha256_hex(&content);
        units.push(LocalUnit {
            name: u.name.clone(),
            content,
            sha256,
        });
    }
    Ok(units)
}

/// Units generated from `[services.NAME.run]`, installed like the listed ones.
fn generated_units(service: &Service, has_env: bool) -> Vec<LocalUnit> {
    let mut units = Vec::new();
    for g in generated(service) {
        let mut content = g.content.into_bytes();
        let template = crate::systemd::switch::template(&service.name);
        // Services read the release's env file, unless the run table asks for it already.
        if service.switch.is_some() && g.name == template {
            let env_listed = String::from_utf8_lossy(&content).contains(".ferry/env");
            content = crate::systemd::switch::template_with_env(
                &content,
                &service.name,
                has_env && !env_listed,
            );
        } else if has_env
            && g.name.ends_with(".service")
            && !String::from_utf8_lossy(&content).contains(".ferry/env")
        {
            content = crate::release::env::unit_with_env_file(&content, &service.name);
        }
        let sha256 = crate::digest::sha256_hex(&content);
        units.push(LocalUnit {
            name: g.name,
            content,
            sha256,
        });
    }
    units
}

/// The units ferry generates for `service`: from `run`, and those of a switch.
pub fn generated(service: &Service) -> Vec<crate::systemd::units::Generated> {
    match &service.switch {
        Some(sw) => crate::systemd::switch::generate(&service.name, sw, service.run.as_ref()),
        None => service
            .run
            .iter()
            .flat_map(|r| crate::systemd::units::generate(&service.name, r))
            .collect(),
    }
}

/// `user@hostname` and the git commit of the config's directory.
pub fn origin(config: &Config) -> Origin {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let dir = config
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let git_commit = git(&["rev-parse", "--short=12", "HEAD"]).map(|c| {
        match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{c}-dirty"),
            _ => c,
        }
    });
    Origin {
        by: format!("{user}@{host}"),
        git_commit,
        created: release::now_rfc3339(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        crate::digest::sha256_hex(bytes)
    }

    /// Wherever an upload takes the background hash over (before it starts, in the middle, after
    /// it finished), hashing the rest of the file from there gives the file's hash.
    #[test]
    fn an_upload_continues_the_background_hash_wherever_it_got_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.bin");
        let content: Vec<u8> = (0..5u32 * 1024 * 1024 + 123)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let whole = sha256(&content);
        for take_at in [0u64, 1, 3 << 20, u64::MAX] {
            let state = Arc::new(HashState::new());
            if take_at == 0 {
                assert!(matches!(state.take(), Progress::Running { offset: 0, .. }));
            }
            let hasher = {
                let (state, path) = (state.clone(), path.clone());
                std::thread::spawn(move || hash_until_taken(&path, &state))
            };
            // Take it over once it has hashed `take_at` bytes (or finished).
            let taken = loop {
                let p = state.progress.lock().unwrap();
                match &*p {
                    Progress::Running { offset, .. } if *offset < take_at => {}
                    Progress::Running { .. } => {
                        drop(p);
                        break Some(state.take());
                    }
                    Progress::Taken | Progress::Done => break None,
                }
                drop(p);
                std::thread::yield_now();
            };
            let outcome = hasher.join().unwrap();
            match taken {
                Some(Progress::Running { mut ctx, offset }) => {
                    assert!(outcome.is_none(), "a hash taken over stops");
                    assert!(offset >= take_at.min(content.len() as u64));
                    ctx.update(&content[offset as usize..]);
                    assert_eq!(plan::hex(ctx.finish().as_ref()), whole, "taken at {offset}");
                }
                Some(Progress::Done) => {
                    let (size, hash) = outcome.expect("finished").unwrap();
                    assert_eq!((size, hash), (content.len() as u64, whole.clone()));
                }
                _ if take_at == 0 => assert!(outcome.is_none(), "taken before it started"),
                _ => {
                    let (size, hash) = outcome.expect("finished").unwrap();
                    assert_eq!((size, hash), (content.len() as u64, whole.clone()));
                }
            }
        }
    }
}
