//! Finding a plugin's bytes: a built-in name or a path, with its digest.
//!
//! A bare name (`openai`) always means a built-in, never a file: otherwise a
//! file of that name in the working directory would run in its place while
//! every log line still said `plugin=openai`. A file needs a path (`./x`,
//! `dir/x`) or the `.wasm` extension. What was loaded is logged with its
//! SHA-256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Plugins compiled from `plugins/` and embedded in the binary, so
/// `--plugin openai` works out of the box.
const BUILTINS: &[(&str, &[u8])] = &[
    ("openai", include_bytes!(concat!(env!("OUT_DIR"), "/openai.wasm"))),
    ("anthropic", include_bytes!(concat!(env!("OUT_DIR"), "/anthropic.wasm"))),
    ("gemini", include_bytes!(concat!(env!("OUT_DIR"), "/gemini.wasm"))),
    ("mock", include_bytes!(concat!(env!("OUT_DIR"), "/mock.wasm"))),
    ("smart-retry", include_bytes!(concat!(env!("OUT_DIR"), "/smart-retry.wasm"))),
];

/// Names of the built-in plugins.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// A plugin ready to compile: its bytes, a display name and its SHA-256.
#[derive(Clone)]
pub struct PluginSource {
    /// `openai` for a built-in, the path for a file.
    pub name: String,
    /// Whether it came from the binary itself.
    pub builtin: bool,
    /// The component bytes.
    pub bytes: std::borrow::Cow<'static, [u8]>,
    /// Lower-case hex SHA-256 of `bytes`.
    pub digest: String,
}

impl std::fmt::Debug for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSource")
            .field("name", &self.name)
            .field("builtin", &self.builtin)
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(
        "plugin `{name}` not found: no built-in plugin of that name (built-ins: {builtins}); to load a file, give its path (./{name}) or a name ending in .wasm"
    )]
    NotFound { name: String, builtins: String },
    #[error("plugin `{0}` not found: no such file")]
    NoSuchFile(PathBuf),
    #[error("cannot read plugin `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{0}` is not a WebAssembly file (bad magic number); pass a component built for wasm32-wasip2")]
    NotWasm(PathBuf),
    #[error(
        "`{0}` is a core WebAssembly module, not a component; build it with `--target wasm32-wasip2` or wrap it with `wasm-tools component new`"
    )]
    CoreModule(PathBuf),
    #[error("plugin `{name}` has SHA-256 {actual}, but {expected} was required (--plugin-sha256)")]
    DigestMismatch { name: String, expected: String, actual: String },
}

impl PluginSource {
    /// Resolves `spec`: a path (with a separator, or ending in `.wasm`) is a
    /// file; anything else is a built-in name.
    pub fn resolve(spec: &str) -> Result<Self, PluginError> {
        let is_path = spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".wasm");
        let source = if is_path {
            let path = Path::new(spec);
            if !path.is_file() {
                return Err(PluginError::NoSuchFile(path.into()));
            }
            Self::from_file(path)?
        } else {
            match BUILTINS.iter().find(|(name, _)| *name == spec) {
                Some((name, bytes)) => Self::from_bytes(name, true, (*bytes).into()),
                None => {
                    return Err(PluginError::NotFound {
                        name: spec.to_string(),
                        builtins: builtin_names().collect::<Vec<_>>().join(", "),
                    });
                }
            }
        };
        tracing::info!(plugin = %source.name, builtin = source.builtin, sha256 = %source.digest, "plugin loaded");
        Ok(source)
    }

    fn from_file(path: &Path) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.into(), source })?;
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotWasm(path.into()));
        }
        if !wasmparser::Parser::is_component(&bytes) {
            return Err(PluginError::CoreModule(path.into()));
        }
        Ok(Self::from_bytes(&path.display().to_string(), false, bytes.into()))
    }

    fn from_bytes(name: &str, builtin: bool, bytes: std::borrow::Cow<'static, [u8]>) -> Self {
        let digest = hex::encode(Sha256::digest(&bytes));
        PluginSource { name: name.to_string(), builtin, bytes, digest }
    }

    /// Refuses the plugin unless its digest is `expected` (hex, any case).
    pub fn verify_digest(&self, expected: &str) -> Result<(), PluginError> {
        let expected = expected.trim().trim_start_matches("sha256:").to_ascii_lowercase();
        if expected == self.digest {
            Ok(())
        } else {
            Err(PluginError::DigestMismatch { name: self.name.clone(), expected, actual: self.digest.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_and_are_components() {
        for name in builtin_names() {
            let p = PluginSource::resolve(name).expect("builtin");
            assert!(p.builtin);
            assert!(wasmparser::Parser::is_component(&p.bytes), "{name}");
            assert_eq!(p.digest.len(), 64);
            p.verify_digest(&format!("sha256:{}", p.digest.to_uppercase())).expect("digest matches");
            assert!(p.verify_digest("00").is_err());
        }
    }

    #[test]
    fn files_need_a_path_and_bare_names_are_built_ins() {
        // (That a file named like a built-in in the working directory does
        // not stand in for it is shown end to end, in tests/e2e/hostile.rs.)
        let err = PluginSource::resolve("impostor").expect_err("not a built-in");
        assert!(err.to_string().contains("give its path (./impostor)"), "{err}");
        assert!(matches!(PluginSource::resolve("./no-such.wasm"), Err(PluginError::NoSuchFile(_))));
        assert!(matches!(PluginSource::resolve("no-such.wasm"), Err(PluginError::NoSuchFile(_))));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("openai");
        std::fs::write(&file, b"not wasm").expect("write");
        let by_path = PluginSource::resolve(file.to_str().expect("utf8"));
        assert!(matches!(by_path, Err(PluginError::NotWasm(_))), "a path is always a file");
    }

    #[test]
    fn unknown_names_and_bad_files_are_explained() {
        let err = PluginSource::resolve("nope").expect_err("unknown");
        assert!(err.to_string().contains("built-ins: openai, anthropic, gemini, mock, smart-retry"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("x.wasm");
        std::fs::write(&text, "hello").expect("write");
        assert!(matches!(PluginSource::resolve(text.to_str().expect("utf8")), Err(PluginError::NotWasm(_))));
        let core = dir.path().join("core.wasm");
        std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
        assert!(matches!(PluginSource::resolve(core.to_str().expect("utf8")), Err(PluginError::CoreModule(_))));
    }
}
