//! The Lua sources and the `--- @include` mechanism.
//!
//! An operation's script (`lua/ops/<name>.lua`) pulls in the helpers it
//! uses with lines of the form
//!
//! ```lua
//! --- @include "include/record.lua"
//! ```
//!
//! as in bullmq's `src/commands`. [`expand`] replaces them with the helper
//! files (each once, a helper's own includes first), so a script carries
//! only what it uses. The helpers only define constants and functions; the
//! keys they touch are their arguments, so the same helper serves scripts
//! whose KEYS differ. Expansion runs once, when a broker is built; the
//! test below expands every script.

use std::collections::HashSet;

/// Every helper, by the name scripts include it with.
const INCLUDES: &[(&str, &str)] = &[
    (
        "include/add_jobs.lua",
        include_str!("../lua/include/add_jobs.lua"),
    ),
    (
        "include/chunk.lua",
        include_str!("../lua/include/chunk.lua"),
    ),
    ("include/dead.lua", include_str!("../lua/include/dead.lua")),
    (
        "include/epoch.lua",
        include_str!("../lua/include/epoch.lua"),
    ),
    ("include/meta.lua", include_str!("../lua/include/meta.lua")),
    (
        "include/notify.lua",
        include_str!("../lua/include/notify.lua"),
    ),
    (
        "include/progress.lua",
        include_str!("../lua/include/progress.lua"),
    ),
    (
        "include/promote.lua",
        include_str!("../lua/include/promote.lua"),
    ),
    (
        "include/record.lua",
        include_str!("../lua/include/record.lua"),
    ),
    ("include/sep.lua", include_str!("../lua/include/sep.lua")),
    ("include/spec.lua", include_str!("../lua/include/spec.lua")),
    (
        "include/split.lua",
        include_str!("../lua/include/split.lua"),
    ),
    (
        "include/vcall.lua",
        include_str!("../lua/include/vcall.lua"),
    ),
    ("include/vget.lua", include_str!("../lua/include/vget.lua")),
    ("include/wake.lua", include_str!("../lua/include/wake.lua")),
];

/// A script with its includes expanded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expanded {
    /// The included helpers, in dependency order: definitions only, which
    /// the function library runs once when it is loaded.
    pub(crate) helpers: String,
    /// The script itself, without its include lines: what runs per call.
    pub(crate) body: String,
}

impl Expanded {
    /// The script as one chunk, for `EVAL`.
    pub(crate) fn eval_source(&self) -> String {
        format!("{}\n{}", self.helpers, self.body)
    }
}

/// The file an include line names, if `line` is one.
fn include_of(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("--- @include")?.trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}

/// Expands the `--- @include "…"` lines of `source` with the files
/// `lookup` finds by name. Each file is included once however many
/// scripts or helpers include it, after the files it includes itself.
/// An unknown name or an include cycle is an error naming it.
pub(crate) fn expand_with<'a>(
    source: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<Expanded, String> {
    fn visit<'a>(
        name: &str,
        lookup: &dyn Fn(&str) -> Option<&'a str>,
        done: &mut HashSet<String>,
        active: &mut Vec<String>,
        out: &mut String,
    ) -> Result<(), String> {
        if done.contains(name) {
            return Ok(());
        }
        if active.iter().any(|a| a == name) {
            return Err(format!("include cycle: {} -> {name}", active.join(" -> ")));
        }
        let text = lookup(name).ok_or_else(|| format!("unknown include `{name}`"))?;
        active.push(name.to_owned());
        let mut own = String::with_capacity(text.len());
        for line in text.lines() {
            match include_of(line) {
                Some(dep) => visit(dep, lookup, done, active, out)?,
                None => {
                    own.push_str(line);
                    own.push('\n');
                }
            }
        }
        active.pop();
        done.insert(name.to_owned());
        out.push_str(&own);
        Ok(())
    }

    let mut helpers = String::new();
    let mut body = String::with_capacity(source.len());
    let mut done = HashSet::new();
    for line in source.lines() {
        match include_of(line) {
            Some(name) => visit(name, &lookup, &mut done, &mut Vec::new(), &mut helpers)?,
            None => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    Ok(Expanded { helpers, body })
}

/// Expands `source` with the helpers in `lua/include/`.
pub(crate) fn expand(source: &str) -> Result<Expanded, String> {
    expand_with(source, |name| {
        INCLUDES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files<'a>(all: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| all.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    #[test]
    fn includes_are_expanded_once_after_their_own_includes() {
        let all = [
            ("a.lua", "--- @include \"c.lua\"\nlocal A = C\n"),
            (
                "b.lua",
                "--- @include \"c.lua\"\n--- @include \"a.lua\"\nlocal B = A\n",
            ),
            ("c.lua", "local C = 1\n"),
        ];
        let x = expand_with(
            "-- header\n--- @include \"b.lua\"\n--- @include \"a.lua\"\nreturn B\n",
            files(&all),
        )
        .unwrap();
        assert_eq!(x.helpers, "local C = 1\nlocal A = C\nlocal B = A\n");
        assert_eq!(x.body, "-- header\nreturn B\n");
        assert_eq!(x.eval_source(), format!("{}\n{}", x.helpers, x.body));
    }

    #[test]
    fn unknown_includes_and_cycles_are_errors() {
        let err = expand_with("--- @include \"nope.lua\"\n", files(&[])).unwrap_err();
        assert!(err.contains("nope.lua"), "{err}");
        let all = [
            ("a.lua", "--- @include \"b.lua\"\n"),
            ("b.lua", "--- @include \"a.lua\"\n"),
        ];
        let err = expand_with("--- @include \"a.lua\"\n", files(&all)).unwrap_err();
        assert!(
            err.contains("cycle") && err.contains("a.lua -> b.lua"),
            "{err}"
        );
    }

    #[test]
    fn lines_that_only_look_like_includes_stay() {
        let x = expand_with(
            "-- @include \"x.lua\"\nlocal s = '--- @include'\n",
            files(&[]),
        )
        .unwrap();
        assert_eq!(x.helpers, "");
        assert_eq!(x.body, "-- @include \"x.lua\"\nlocal s = '--- @include'\n");
    }

    #[test]
    fn every_helper_expands_and_names_only_known_includes() {
        for (name, _) in INCLUDES {
            let x = expand(&format!("--- @include \"{name}\"\n"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!x.helpers.contains("@include"), "{name}");
        }
    }
}
