//! The `options!` macro: one entry per run option, and from it the flag,
//! the `--config` key, the default, the check and the resolved value.
//!
//! An entry is the field's doc comment and `#[arg]` attributes (what clap
//! shows in `--help`), its name and type, then optionally `= DEFAULT` and
//! `, check CHECK`:
//!
//! ```text
//! /// Requests per minute admitted.
//! #[arg(long, value_name = "N", help_heading = "Rate limits")]
//! rpm: Option<f64>, check PER_MINUTE;
//! ```
//!
//! From the entries the macro writes:
//! - `RunOptions`, deriving both `clap::Args` and `serde::Deserialize`
//!   (kebab-case, unknown keys refused), so a flag and its config key cannot
//!   drift apart: every field is `Option<T>` (unset) or `Vec<T>` (repeatable);
//! - `RunOptions::over`, the flags-over-file merge (`Option`: the flag if
//!   given; `Vec`: the file's entries, then the flags');
//! - `RunOptions::validate`, the one place each value's check runs, whatever
//!   its source (flag, file, or the built-in default);
//! - `RunOptions::defaults` and `RunOptions::shown_defaults` (for `--help`);
//! - `Settings`, the resolved values: `T` for an option with a default,
//!   `Option<T>` or `Vec<T>` otherwise.
//!
//! A plain struct with both derives would give the first point only; each of
//! the others would be one more list of every field to keep in step by hand
//! (the old CLI had four), which is what this table replaces.

/// Defines the run options; see the module documentation.
macro_rules! options {
    (
        $(
            $(#[$meta:meta])*
            $name:ident : $wrap:ident<$inner:ty> $(= $default:expr)? $(, check $check:expr)? ;
        )*
    ) => {
        /// Every run option, as given on the command line or in the
        /// `--config` file (one layer each; unset fields are `None`/empty).
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub struct RunOptions {
            $( $(#[$meta])* pub $name: $wrap<$inner>, )*
        }

        /// The run options with their defaults applied, validated.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( pub $name: $crate::options::table::resolved_type!($wrap, $inner $(, $default)?), )*
        }

        impl RunOptions {
            /// The long names of the options that have a check (every number).
            pub const CHECKED: &'static [&'static str] = &[$( $( $crate::options::table::first!(stringify!($name), $check), )? )*];

            /// This layer over `lower`: a value set here wins; lists are
            /// `lower`'s entries followed by this layer's.
            pub fn over(self, lower: RunOptions) -> RunOptions {
                use $crate::options::table::Layer as _;
                RunOptions { $( $name: self.$name.over(lower.$name), )* }
            }

            /// Checks every value of this layer; the error names the key as
            /// `origin` spells it.
            pub fn validate(&self, origin: &$crate::options::Origin) -> Result<(), $crate::options::OptionsError> {
                use $crate::options::table::Layer as _;
                $( $(
                    for value in self.$name.values() {
                        $crate::options::check::Check::check(&$check, value)
                            .map_err(|expected| origin.invalid(stringify!($name), value, expected))?;
                    }
                )? )*
                Ok(())
            }

            /// The built-in defaults, as a layer.
            pub fn defaults() -> RunOptions {
                RunOptions { $( $name: $crate::options::table::default_layer!($wrap $(, $default)?), )* }
            }

            /// `(field, shown default)` for `--help`, for every option whose
            /// default is worth showing.
            pub fn shown_defaults() -> Vec<(&'static str, String)> {
                use $crate::options::table::ShowDefault as _;
                let mut shown = Vec::new();
                $( $(
                    if let Some(text) = ($default).show() {
                        shown.push((stringify!($name), text));
                    }
                )? )*
                shown
            }

            /// The resolved values: each unset option takes its default.
            pub fn resolve(self) -> Settings {
                Settings { $( $name: $crate::options::table::resolve_field!(self.$name $(, $default)?), )* }
            }
        }
    };
}

/// The type of a resolved field.
macro_rules! resolved_type {
    (Option, $inner:ty, $default:expr) => { $inner };
    (Option, $inner:ty) => { Option<$inner> };
    (Vec, $inner:ty) => { Vec<$inner> };
}

/// A field of the defaults layer.
macro_rules! default_layer {
    (Option, $default:expr) => {
        Some($default)
    };
    ($wrap:ident) => {
        $wrap::default()
    };
}

/// A resolved field.
macro_rules! resolve_field {
    ($value:expr, $default:expr) => {
        $value.unwrap_or_else(|| $default)
    };
    ($value:expr) => {
        $value
    };
}

/// The first of two expressions (the second only selects a repetition).
macro_rules! first {
    ($a:expr, $b:expr) => {
        $a
    };
}

pub(crate) use {default_layer, first, options, resolve_field, resolved_type};

/// How one layer's field combines with the layer below it, and which values
/// it holds (to check each).
pub(crate) trait Layer {
    /// One value of the field.
    type Value;
    /// This layer over `lower`.
    fn over(self, lower: Self) -> Self;
    /// The values this layer sets.
    fn values(&self) -> impl Iterator<Item = &Self::Value>;
}

impl<T> Layer for Option<T> {
    type Value = T;

    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.iter()
    }
}

impl<T> Layer for Vec<T> {
    type Value = T;

    fn over(self, mut lower: Self) -> Self {
        lower.extend(self);
        lower
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.iter()
    }
}

/// How a default reads in `--help` (`None`: not shown, e.g. a switch's `false`).
pub(crate) trait ShowDefault {
    fn show(&self) -> Option<String>;
}

impl ShowDefault for i64 {
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ShowDefault for f64 {
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ShowDefault for bool {
    fn show(&self) -> Option<String> {
        None
    }
}

impl ShowDefault for std::path::PathBuf {
    fn show(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_win_and_lists_accumulate_lower_first() {
        assert_eq!(Some(1).over(Some(2)), Some(1));
        assert_eq!(None.over(Some(2)), Some(2));
        assert_eq!(vec![3, 4].over(vec![1, 2]), vec![1, 2, 3, 4]);
        assert_eq!(Some(5).values().collect::<Vec<_>>(), [&5]);
    }
}
