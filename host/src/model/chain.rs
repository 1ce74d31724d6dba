//! One line for an error and every cause behind it.
//!
//! Errors keep their source (`#[source]`) instead of flattening it into a
//! string, so a caller can still inspect it; whoever finally shows the error
//! to a person (the CLI, `plugin check`, a host-failure record) turns the
//! chain into one line here. A cause whose text the message already contains
//! is said once, so an error may both name its source in its own message
//! and keep it as its source.

use std::error::Error;

/// `error` and its causes, outermost first, joined by `: `.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading prices.toml")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading prices.toml: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(error_chain(&Outer(io())), "reading prices.toml: no such file");
        assert_eq!(error_chain(&Repeats(io())), "reading prices.toml: no such file");
    }

    #[test]
    fn a_boxed_anyhow_chain_is_walked() {
        let inner = anyhow::anyhow!("bad magic number").context("compiling");
        let boxed: Box<dyn Error + Send + Sync> = inner.into();
        assert_eq!(error_chain(boxed.as_ref()), "compiling: bad magic number");
    }
}
