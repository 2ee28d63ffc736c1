//! Local preparation: read and hash the files and unit files of a release, and say who deploys.
//!
//! Everything here happens before any connection, so bad input fails before a host changes.

use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::{Config, Service};
use crate::error::{Error, Result};
use crate::plan::{self, LocalFile, LocalRelease, LocalUnit, Origin};
use crate::release;

/// Hash a file by streaming it (memory stays bounded), on a thread of its own: ring's SHA-256
/// (SHA-NI or AVX2 assembly) and plain reads, no async file I/O in the way.
async fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
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
        sha256: plan::hex(&Sha256::digest(&content)),
        content: Some(content),
    })
}

/// The hashes computed in the background: (index in the release's files, size, SHA-256), or
/// what went wrong reading a file.
type Hashing = tokio::task::JoinHandle<std::result::Result<Vec<(usize, u64, String)>, String>>;

/// A release read locally. Everything is known at once (and checked: files exist and can be
/// opened, unit files are text, templates render) but the hashes of the files the hash cache
/// does not know: those are computed in the background, while the hosts are connected to and
/// read under their lock, and [`Local::full`] waits for them before any plan is made.
pub struct Local {
    /// The release, with the hashes still being computed left empty.
    pub skeleton: Arc<LocalRelease>,
    hashing: tokio::sync::Mutex<Option<Hashing>>,
    full: tokio::sync::OnceCell<std::result::Result<Arc<LocalRelease>, String>>,
}

impl Local {
    /// The release with every hash (computed once, shared by every host).
    pub async fn full(&self) -> Result<Arc<LocalRelease>> {
        let full = self
            .full
            .get_or_init(|| async {
                let Some(job) = self.hashing.lock().await.take() else {
                    return Ok(self.skeleton.clone());
                };
                let hashes = job.await.map_err(|e| format!("hashing the files: {e}"))??;
                let mut full = (*self.skeleton).clone();
                for (i, size, sha256) in hashes {
                    full.files[i].size = size;
                    full.files[i].sha256 = sha256;
                }
                Ok(Arc::new(full))
            })
            .await;
        full.clone().map_err(Error::Usage)
    }
}

/// Read the local side of a release and start hashing its files; resolve its env (see
/// [`crate::env`]).
pub async fn prepare(service: &Service) -> Result<Local> {
    let env = crate::env::resolve(service).await?;
    let mut cache = crate::hash_cache::HashCache::load();
    let mut files = Vec::new();
    // The files the cache does not know: (index, path, metadata before hashing).
    let mut to_hash = Vec::new();
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
    let hashing = if to_hash.is_empty() {
        cache.save();
        None
    } else {
        let service_name = service.name.clone();
        Some(tokio::spawn(async move {
            // Several at once (a thread each).
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let hashed: Vec<_> =
                futures::stream::iter(to_hash.into_iter().map(|(i, path, before)| async move {
                    let hashed = sha256_file(&path).await;
                    (i, path, before, hashed)
                }))
                .buffered(threads)
                .collect()
                .await;
            let mut out = Vec::new();
            for (i, path, before, hashed) in hashed {
                let (size, sha256) = hashed.map_err(|e| {
                    format!(
                        "service {service_name}: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                cache.put(&path, &before, &sha256);
                out.push((i, size, sha256));
            }
            cache.save();
            Ok(out)
        }))
    };
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
        // Services read the release's env file (see crate::env).
        if env.is_some() && u.name.ends_with(".service") {
            content = crate::env::unit_with_env_file(&content, &service.name);
        }
        let sha256 = plan::hex(&Sha256::digest(&content));
        units.push(LocalUnit {
            name: u.name.clone(),
            content,
            sha256,
        });
    }
    // Units generated from `[services.NAME.run]`, installed like the listed ones.
    for g in service
        .run
        .iter()
        .flat_map(|r| crate::units::generate(&service.name, r))
    {
        let mut content = g.content.into_bytes();
        // Services read the release's env file, unless the run table asks for it already.
        if env.is_some()
            && g.name.ends_with(".service")
            && !String::from_utf8_lossy(&content).contains(".ferry/env")
        {
            content = crate::env::unit_with_env_file(&content, &service.name);
        }
        let sha256 = plan::hex(&Sha256::digest(&content));
        units.push(LocalUnit {
            name: g.name,
            content,
            sha256,
        });
    }
    let local = LocalRelease {
        files,
        units,
        env,
        instances: Vec::new(),
    };
    // Templates are rendered for every host now, so an undefined name stops before any
    // connection.
    crate::template::check(service, &local)?;
    Ok(Local {
        skeleton: Arc::new(local),
        hashing: tokio::sync::Mutex::new(hashing),
        full: tokio::sync::OnceCell::new(),
    })
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
