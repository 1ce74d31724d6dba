//! Option values that are more than a number or a path: how each is read
//! from a flag's text and from a `--config` value, the same way from both.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use crate::egress::{GrantParseError, HostGrant};
use crate::model::FailureClass;
use crate::run::AbortMode;

use super::table::ShowDefault;

/// `--plugin-config KEY=VALUE`: VALUE is JSON when it parses as JSON, else a
/// string (so `model=gpt-4o` needs no quotes).
pub(super) fn parse_key_value(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    if k.is_empty() {
        return Err(format!("empty key in `{s}`"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// `[plugin-config]` in the file: a table, read as the same pairs the flag gives.
pub(super) fn key_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, Value)>, D::Error> {
    Ok(serde_json::Map::<String, Value>::deserialize(d)?.into_iter().collect())
}

/// A list of strings in the file, each parsed like the flag's value.
pub(super) fn parsed_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Vec::<String>::deserialize(d)?.iter().map(|s| s.parse().map_err(serde::de::Error::custom)).collect()
}

/// `--allow-internal-host`: a grant whose name may resolve to internal
/// addresses; exact names only (see [`HostGrant::parse_internal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalGrant(pub HostGrant);

impl FromStr for InternalGrant {
    type Err = GrantParseError;

    fn from_str(s: &str) -> Result<Self, GrantParseError> {
        HostGrant::parse_internal(s).map(InternalGrant)
    }
}

/// Failure classes that abort the run: `auth,quota_exhausted` on the command
/// line, the same string or an array of names in the file; `none` for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList(pub Vec<FailureClass>);

impl ClassList {
    /// The default: credentials and account problems stop the run, since
    /// every later item would fail the same way.
    pub fn default_fail_fast() -> Self {
        ClassList(vec![FailureClass::Auth, FailureClass::QuotaExhausted])
    }
}

impl FromStr for ClassList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty() {
            return Ok(ClassList(Vec::new()));
        }
        s.split(',').map(|c| c.trim().parse()).collect::<Result<_, _>>().map(ClassList)
    }
}

impl fmt::Display for ClassList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(","))
    }
}

impl<'de> Deserialize<'de> for ClassList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            List(Vec<String>),
        }
        let classes = match Given::deserialize(d)? {
            Given::Text(text) => return text.parse().map_err(serde::de::Error::custom),
            Given::List(names) => names.iter().map(|n| n.parse::<FailureClass>()).collect::<Result<_, _>>(),
        };
        classes.map(ClassList).map_err(serde::de::Error::custom)
    }
}

impl ShowDefault for ClassList {
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ShowDefault for AbortMode {
    fn show(&self) -> Option<String> {
        use clap::ValueEnum as _;
        self.to_possible_value().map(|v| v.get_name().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse_json_or_string() {
        assert_eq!(parse_key_value("a=1").expect("ok"), ("a".into(), Value::from(1)));
        assert_eq!(parse_key_value("a=null").expect("ok"), ("a".into(), Value::Null));
        assert_eq!(parse_key_value("u=http://x:1/v1").expect("ok"), ("u".into(), Value::from("http://x:1/v1")));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=1").is_err());
    }

    #[test]
    fn class_lists_parse_from_text_and_from_arrays() {
        assert_eq!("none".parse::<ClassList>(), Ok(ClassList(vec![])));
        assert_eq!(
            "auth, too-large".parse::<ClassList>(),
            Ok(ClassList(vec![FailureClass::Auth, FailureClass::TooLarge]))
        );
        assert!("auth,bogus".parse::<ClassList>().is_err());
        #[derive(Deserialize)]
        struct T {
            c: ClassList,
        }
        let t: T = toml::from_str("c = [\"auth\", \"quota_exhausted\"]").expect("array");
        assert_eq!(t.c, ClassList::default_fail_fast());
        let t: T = toml::from_str("c = \"none\"").expect("text");
        assert_eq!(t.c, ClassList(vec![]));
        let e = toml::from_str::<T>("c = [\"nope\"]").err().expect("bad class").to_string();
        assert!(e.contains("unknown failure class"), "{e}");
        assert_eq!(ClassList::default_fail_fast().to_string(), "auth,quota_exhausted");
    }
}
