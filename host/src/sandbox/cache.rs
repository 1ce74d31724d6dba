//! The compiled-code cache: machine code for plugins, kept between runs.
//!
//! Loading cached code is `unsafe` in wasmtime for a reason: a `.cwasm` file
//! is native code that runs with the host's privileges, and wasmtime trusts
//! it as-is. Whoever can write the cache can therefore run code in the host,
//! sandbox or not. So:
//! - entries are named by the component's SHA-256 and the engine's
//!   compatibility hash: a changed plugin or another wasmtime build never
//!   loads stale code, and a pinned `--plugin-sha256` pins the cached code;
//! - the directory is created private (0700) and an entry is written private
//!   (0600) under a temporary name, then renamed into place;
//! - code is loaded only from that one directory, and only when the
//!   directory (after symlinks) is owned by the current user and not writable
//!   by group or others, and the entry is a regular file (not a symlink)
//!   owned by the user and not writable by others. Otherwise the cache is not
//!   used at all: the plugin is compiled in memory, with a warning.
//!
//! Not covered: an attacker who already runs as the user (they can edit the
//! binary too), or one who controls a *parent* of the cache directory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use super::SandboxError;
use super::engine::SandboxEngine;

/// Where compiled plugins are kept between runs (see the module docs).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The user's default cache directory (`$XDG_CACHE_HOME/batchllm-host` or
    /// `~/.cache/batchllm-host`), if one can be determined.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("batchllm-host"))
    }

    /// The entry for `digest` under `engine`, if caching is on and the
    /// directory is safe to use (created private when missing).
    fn entry(&self, engine: &SandboxEngine, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        if let Err(e) = prepare_dir(dir) {
            tracing::warn!(dir = %dir.display(), reason = %e, "not using the compile cache; compiling the plugin in memory");
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.engine().precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{digest}-{:016x}.cwasm", h.finish())))
    }

    /// Returns the compiled component, from the cache when possible.
    pub fn load(&self, engine: &SandboxEngine, bytes: &[u8], digest: &str) -> Result<Component, SandboxError> {
        let entry = self.entry(engine, digest);
        if let Some(path) = &entry {
            match check_entry(path) {
                Ok(true) => {
                    // SAFETY: the file sits in a directory owned by this user
                    // and writable by no one else, is a regular file owned by
                    // this user and writable by no one else (both checked just
                    // above), and is named by the digest of the component and
                    // the engine's compatibility hash, so it is the output of
                    // `Component::serialize` that `store` below wrote for
                    // exactly these bytes under this engine configuration.
                    match unsafe { Component::deserialize_file(engine.engine(), path) } {
                        Ok(component) => return Ok(component),
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry"),
                    }
                }
                Ok(false) => {}
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "not loading this cache entry; recompiling");
                }
            }
        }
        let started = std::time::Instant::now();
        let component = Component::new(engine.engine(), bytes).map_err(|e| SandboxError::Compile(e.into()))?;
        tracing::info!(elapsed = ?started.elapsed(), "compiled plugin");
        if let Some(path) = &entry {
            store(&component, path);
            prune(path, MAX_CACHE_BYTES);
        }
        Ok(component)
    }
}

/// The cache directory's size cap. JS and Python plugins compile to 35-40
/// MB each, and every rebuilt plugin is a new digest, so without a cap the
/// directory only grows.
const MAX_CACHE_BYTES: u64 = 2 << 30;

/// Deletes the least recently written entries beyond `max_bytes`, never
/// `keep` (the entry just written).
fn prune(keep: &Path, max_bytes: u64) {
    let Some(dir) = keep.parent() else { return };
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> = read
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, path) in entries {
        if total <= max_bytes {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "evicted an old compiled plugin from the cache");
            total -= len;
        }
    }
}

fn store(component: &Component, path: &Path) {
    let write = || -> std::io::Result<()> {
        let bytes = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&tmp)?, &bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled plugin");
    }
}

/// Creates `dir` private when missing, then checks it may be trusted.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        create_private_dir(dir).map_err(|e| format!("cannot create it: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot inspect it: {e}"))?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    check_owner_and_mode(&meta, "the directory")
}

/// Whether a cache entry exists and may be loaded; an error says why not.
fn check_entry(path: &Path) -> Result<bool, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot inspect it: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err("it is not a regular file (a symlink or something else)".into());
    }
    check_owner_and_mode(&meta, "the entry")?;
    Ok(true)
}

#[cfg(unix)]
fn check_owner_and_mode(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{what} is owned by uid {}, not by the current user (uid {me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{what} is writable by group or others (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_and_mode(_meta: &std::fs::Metadata, _what: &str) -> Result<(), String> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn pruning_evicts_the_oldest_entries_beyond_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut paths = Vec::new();
        for i in 0..4 {
            let p = dir.path().join(format!("{i}.cwasm"));
            std::fs::write(&p, vec![0u8; 100]).expect("write");
            let age = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options().write(true).open(&p).expect("open").set_modified(age).expect("mtime");
            paths.push(p);
        }
        std::fs::write(dir.path().join("other.txt"), vec![0u8; 1000]).expect("write");
        // Keep the oldest one explicitly: it was just written.
        prune(&paths[0], 250);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [true, false, false, true], "the kept entry and the newest stay");
        assert!(dir.path().join("other.txt").exists(), "only cache entries are touched");
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/b/cache");
        prepare_dir(&dir).expect("created and trusted");
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_directory_writable_by_others_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).expect("mkdir");
        chmod(&dir, 0o777);
        let err = prepare_dir(&dir).expect_err("refused");
        assert!(err.contains("writable by group or others"), "{err}");
        chmod(&dir, 0o755);
        prepare_dir(&dir).expect("read-only for others is fine");
    }

    #[test]
    fn entries_must_be_private_regular_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let entry = tmp.path().join("x.cwasm");
        assert_eq!(check_entry(&entry), Ok(false), "missing: compile");
        std::fs::write(&entry, b"code").expect("write");
        chmod(&entry, 0o600);
        assert_eq!(check_entry(&entry), Ok(true));
        chmod(&entry, 0o666);
        assert!(check_entry(&entry).expect_err("refused").contains("writable"));
        let link = tmp.path().join("y.cwasm");
        std::os::unix::fs::symlink(&entry, &link).expect("symlink");
        assert!(check_entry(&link).expect_err("refused").contains("not a regular file"));
    }

    #[test]
    fn an_untrusted_directory_disables_the_cache() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).expect("mkdir");
        chmod(&dir, 0o777);
        let engine = SandboxEngine::new(&super::super::SandboxLimits::default(), 1).expect("engine");
        let cache = CompileCache::new(Some(dir.clone()));
        assert!(cache.entry(&engine, "abc").is_none());
        chmod(&dir, 0o700);
        assert!(cache.entry(&engine, "abc").is_some_and(|p| p.starts_with(&dir)));
    }
}
