//! Compiling a plugin once, caching the machine code, and linking it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use batchllm_bindings::{Strategy, StrategyPre};
use wasmtime::component::{Component, HasSelf, Linker};

use super::SandboxError;
use super::engine::SandboxEngine;
use super::state::HostState;

/// Where compiled plugins are kept between runs.
///
/// Entries are keyed by the component's SHA-256 and the engine's
/// compatibility hash, so a changed plugin or a different wasmtime build never
/// loads stale code. Only this directory is ever deserialized from; it is
/// created private to the user.
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

    fn entry(&self, engine: &SandboxEngine, digest: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.engine().precompile_compatibility_hash().hash(&mut h);
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{:016x}.cwasm", h.finish())))
    }

    /// Returns the compiled component, from the cache when possible.
    pub fn load(&self, engine: &SandboxEngine, bytes: &[u8], digest: &str) -> Result<Component, SandboxError> {
        let entry = self.entry(engine, digest);
        if let Some(path) = &entry
            && path.is_file()
        {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` of the same digest under the same
            // engine configuration (both are in the file name), in a
            // directory created private to this user.
            match unsafe { Component::deserialize_file(engine.engine(), path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry"),
            }
        }
        let started = std::time::Instant::now();
        let component = Component::new(engine.engine(), bytes).map_err(|e| SandboxError::Compile(format!("{e:?}")))?;
        tracing::info!(elapsed = ?started.elapsed(), "compiled plugin");
        if let Some(path) = &entry {
            store(&component, path);
        }
        Ok(component)
    }
}

fn store(component: &Component, path: &Path) {
    let write = || -> std::io::Result<()> {
        let bytes = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled plugin");
    }
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

/// Links a compiled component against everything the host offers and checks,
/// once and before any call, that it imports nothing else and exports the
/// strategy.
pub fn link(engine: &SandboxEngine, component: &Component) -> Result<StrategyPre<HostState>, SandboxError> {
    let mut linker: Linker<HostState> = Linker::new(engine.engine());
    let setup = |linker: &mut Linker<HostState>| -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        Strategy::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        Ok(())
    };
    setup(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:?}")))?;
    let pre = linker.instantiate_pre(component).map_err(|e| SandboxError::Incompatible(format!("{e}")))?;
    StrategyPre::new(pre).map_err(|e| SandboxError::Incompatible(format!("{e}")))
}
