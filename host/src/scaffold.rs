//! `batchllm-host plugin new NAME --lang rust|js|python|go [--dir DIR]`:
//! writes a new strategy plugin project from the templates in
//! `plugins/templates/`, embedded in the binary, so a plugin author starts
//! from a folder that builds with its own `build.sh` wherever it is.
//!
//! Why embedded: a plugin author has the binary, not a checkout of this
//! repository, and a template copied out of the repository used to stop at
//! "no WIT contract found". Each template ships the contract
//! (`wit/strategy.wit`, kept identical to the repository's by a test here);
//! the Go template also needs its SDK (`plugins/sdk-go`), which is written
//! into the project as `sdk-go/` with `go.mod` pointing at it.
//!
//! The project is the template renamed: every `my-strategy` becomes NAME
//! (package, lock file, component file, READMEs). The target folder must
//! not exist or be empty; files are created, never overwritten.

use std::path::{Path, PathBuf};

/// The template languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
    Go,
}

impl Lang {
    /// The template folder's name under `plugins/templates/`.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::Go => "go",
        }
    }

    fn files(self) -> &'static [Embedded] {
        match self {
            Lang::Rust => RUST,
            Lang::Js => JS,
            Lang::Python => PYTHON,
            Lang::Go => GO,
        }
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name `{0}`: use lowercase letters, digits and single dashes, starting with a letter \
         (at most 64 characters), e.g. `my-plugin`"
    )]
    InvalidName(String),
    #[error("{} already exists and is not empty; choose another name or pass --dir with a new or empty folder", .0.display())]
    NotEmpty(PathBuf),
    #[error("cannot write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `plugin new` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaffolded {
    /// The project folder.
    pub dir: PathBuf,
    /// The files written, relative to `dir`, in the order written.
    pub files: Vec<String>,
}

impl Scaffolded {
    /// The message `plugin new` prints: what was written and what to do next.
    pub fn summary(&self, name: &str, lang: Lang) -> String {
        let dir = self.dir.display();
        format!(
            "created {dir} ({} plugin `{name}`, {} files, the WIT contract in wit/)\n\
             next:\n  cd {dir} && ./build.sh                  # -> dist/{name}.wasm\n  \
             batchllm-host plugin check {dir}/dist/{name}.wasm\n\
             {dir}/README.md says what to edit.\n",
            lang.dir(),
            self.files.len()
        )
    }
}

/// Writes the `lang` template as plugin `name` into `dir` (default
/// `./<name>`).
pub fn new_plugin(name: &str, lang: Lang, dir: Option<&Path>) -> Result<Scaffolded, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&dir).map_err(io(&dir))?,
        Err(e) => return Err(io(&dir)(e)),
    }
    let mut files = Vec::new();
    for (path, contents) in project_files(name, lang) {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_new(&target, &contents, path.ends_with(".sh")).map_err(io(&target))?;
        files.push(path);
    }
    Ok(Scaffolded { dir, files })
}

/// The project's files, `(relative path, contents)`: the template renamed,
/// plus, for Go, the SDK and `go.mod` pointing at it.
pub fn project_files(name: &str, lang: Lang) -> Vec<(String, Vec<u8>)> {
    let rename = |text: &str| {
        let text = text.replace("my-strategy", name);
        // The Go SDK moves from the repository (../../sdk-go) into the project.
        if lang == Lang::Go { text.replace("../../sdk-go", "./sdk-go") } else { text }
    };
    let mut out: Vec<(String, Vec<u8>)> = lang
        .files()
        .iter()
        .map(|f| {
            let contents = match std::str::from_utf8(f.contents) {
                Ok(text) => rename(text).into_bytes(),
                Err(_) => f.contents.to_vec(),
            };
            (f.path.to_owned(), contents)
        })
        .collect();
    if lang == Lang::Go {
        for (path, contents) in &mut out {
            if path == ".gitignore" {
                contents.extend_from_slice(
                    b"# The Go SDK's toolchain, installed by sdk-go/toolchain.sh.\n/sdk-go/.venv/\n",
                );
            }
        }
        out.extend(GO_SDK.iter().map(|f| (format!("sdk-go/{}", f.path), f.contents.to_vec())));
    }
    out
}

/// Lowercase ASCII letters and digits in dash-separated words, starting
/// with a letter: a valid name for a cargo package, an npm package, a Go
/// module and a file, with no quoting anywhere it is written.
fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Creates `path` (never replacing a file) with `contents`; scripts are
/// made executable.
fn write_new(path: &Path, contents: &[u8], executable: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if executable { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A file of a template, embedded at compile time.
#[derive(Debug)]
struct Embedded {
    /// Relative to the template folder.
    path: &'static str,
    contents: &'static [u8],
}

/// `Embedded` entries for `files` under `plugins/<base>/`.
macro_rules! embed {
    ($base:literal: $($path:literal),* $(,)?) => {
        &[$(Embedded {
            path: $path,
            contents: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/", $base, "/", $path)),
        }),*]
    };
}

// Every file git tracks in each template (a test compares these lists with
// the folders, so a file added there and not here fails it).
static RUST: &[Embedded] = embed!("templates/rust":
    ".gitignore", "Cargo.lock", "Cargo.toml", "README.md", "build.sh", "rust-toolchain.toml", "rustfmt.toml",
    "src/lib.rs", "wit/strategy.wit",
);
static JS: &[Embedded] = embed!("templates/js":
    ".gitignore", "README.md", "build.mjs", "build.sh", "package-lock.json", "package.json", "src/strategy.js",
    "wit/strategy.wit",
);
static PYTHON: &[Embedded] = embed!("templates/python":
    ".gitignore", "README.md", "build.sh", "requirements.txt", "src/strategy.py", "wit/strategy.wit",
);
static GO: &[Embedded] = embed!("templates/go":
    ".gitignore", "README.md", "build.sh", "config.go", "go.mod", "main.go", "request.go", "strategy_test.go",
    "wit/strategy.wit",
);
static GO_SDK: &[Embedded] = embed!("sdk-go":
    "README.md", "abi_wasip1.go", "adapter/Cargo.lock", "adapter/Cargo.toml", "adapter/src/main.rs",
    "adapter_arena_wasip1.go", "add-adapter-realloc.py", "build-component.sh", "classify_wasip1.go", "dispatch.go",
    "exports_wasip1.go", "gc_wasip1.go", "go-test.sh", "go.mod", "host_wasip1.go", "http_wasip1.go",
    "imports_other.go", "jsonvalue/jsonvalue.go", "jsonvalue/jsonvalue_test.go", "requirements.txt", "strategy.go",
    "strategy_test.go", "text/text.go", "text/text_test.go", "toolchain.sh", "types.go",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const LANGS: [Lang; 4] = [Lang::Rust, Lang::Js, Lang::Python, Lang::Go];

    fn plugins_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
    }

    /// The files under `dir`, relative, leaving out what build scripts
    /// install or write (ignored by git).
    fn files_on_disk(dir: &Path) -> BTreeSet<String> {
        const BUILT: [&str; 5] = ["dist", "target", "node_modules", ".venv", "__pycache__"];
        let mut out = BTreeSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder).expect("test") {
                let path = entry.expect("test").path();
                let name = path.file_name().expect("test").to_string_lossy().into_owned();
                if path.is_dir() {
                    if !BUILT.contains(&name.as_str()) {
                        stack.push(path);
                    }
                } else {
                    out.insert(path.strip_prefix(dir).expect("test").to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out
    }

    #[test]
    fn every_template_file_is_embedded() {
        for lang in LANGS {
            let embedded: BTreeSet<String> = lang.files().iter().map(|f| f.path.to_owned()).collect();
            let disk = files_on_disk(&plugins_dir().join("templates").join(lang.dir()));
            assert_eq!(embedded, disk, "plugins/templates/{}: update the list in host/src/scaffold.rs", lang.dir());
        }
        let embedded: BTreeSet<String> = GO_SDK.iter().map(|f| f.path.to_owned()).collect();
        let mut disk = files_on_disk(&plugins_dir().join("sdk-go"));
        disk.retain(|p| !p.ends_with(".pyc"));
        assert_eq!(embedded, disk, "plugins/sdk-go: update GO_SDK in host/src/scaffold.rs");
    }

    #[test]
    fn every_template_ships_the_repository_contract() {
        let contract = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/strategy.wit"));
        for lang in LANGS {
            let wit = lang.files().iter().find(|f| f.path == "wit/strategy.wit").expect("a WIT file");
            assert!(
                wit.contents == contract,
                "plugins/templates/{}/wit/strategy.wit differs from wit/strategy.wit; copy it: \
                 `for t in rust js python go; do cp wit/strategy.wit plugins/templates/$t/wit/; done`",
                lang.dir()
            );
        }
    }

    #[test]
    fn names() {
        for good in ["a", "my-plugin", "p2", "openai-batch-v2", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "My", "-a", "a-", "a--b", "2a", "a_b", "a b", "a/b", "../x", "é", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn projects_are_renamed_and_self_contained() {
        for lang in LANGS {
            let files = project_files("acme-batch", lang);
            for (path, contents) in &files {
                let text = String::from_utf8_lossy(contents);
                assert!(!text.contains("my-strategy"), "{}: {path} still says my-strategy", lang.dir());
                if lang == Lang::Go && !path.starts_with("sdk-go/") {
                    assert!(!text.contains("../../sdk-go"), "{path} points into the repository");
                }
            }
            let file = |p: &str| files.iter().find(|(path, _)| path == p).map(|(_, c)| String::from_utf8_lossy(c));
            match lang {
                Lang::Rust => {
                    assert!(file("Cargo.toml").expect("test").contains("name = \"acme-batch\""));
                    assert!(file("Cargo.lock").expect("test").contains("name = \"acme-batch\""));
                    assert!(file("src/lib.rs").expect("test").contains("path: \"wit\""));
                }
                Lang::Js => assert!(file("package.json").expect("test").contains("\"name\": \"acme-batch\"")),
                Lang::Python => assert!(file("build.sh").expect("test").contains("name=acme-batch")),
                Lang::Go => {
                    let go_mod = file("go.mod").expect("test");
                    assert!(go_mod.contains("module acme-batch") && go_mod.contains("=> ./sdk-go"), "{go_mod}");
                    assert!(file("sdk-go/build-component.sh").is_some());
                    assert!(file(".gitignore").expect("test").contains("/sdk-go/.venv/"));
                }
            }
        }
    }

    #[test]
    fn writes_a_project_and_never_overwrites() {
        let tmp = tempfile::tempdir().expect("test");
        let dir = tmp.path().join("p");
        let made = new_plugin("acme", Lang::Rust, Some(&dir)).expect("test");
        assert_eq!(made.files.len(), RUST.len());
        assert!(dir.join("wit/strategy.wit").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("build.sh")).expect("test").permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
        }
        assert!(made.summary("acme", Lang::Rust).contains("dist/acme.wasm"));
        let again = new_plugin("acme", Lang::Rust, Some(&dir)).expect_err("refused");
        assert!(matches!(again, ScaffoldError::NotEmpty(_)), "{again}");
        assert!(again.to_string().contains("not empty"), "{again}");
        // An empty folder is fine.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("test");
        assert!(new_plugin("acme", Lang::Python, Some(&empty)).is_ok());
        let bad = new_plugin("Bad Name", Lang::Js, Some(&tmp.path().join("x"))).expect_err("refused");
        assert!(bad.to_string().contains("invalid plugin name `Bad Name`"), "{bad}");
        assert!(!tmp.path().join("x").exists(), "nothing is written for a bad name");
    }
}
