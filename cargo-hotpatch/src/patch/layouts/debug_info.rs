//! Whether the debug information of a crate can say anything about its types: only full debug
//! information (`debug = true`, `2`, `"full"`) describes them. With `1`/`"limited"` or
//! `"line-tables-only"` the DWARF exists but holds no types, so a layout check would find nothing
//! to compare and pass silently; the crates built that way are named in a warning instead.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::host::capture::Invocation;
use crate::host::CrateRecord;

/// The profile's `debug` setting for a crate whose invocation records no types, as the user
/// would write it in `Cargo.toml` (`false`, `1`, `"line-tables-only"`); `None` with full debug
/// information.
pub fn without_types(invocation: &Invocation) -> Option<String> {
    let mut level: Option<&str> = None;
    let mut args = invocation.args.iter();
    while let Some(arg) = args.next() {
        if arg == "-g" {
            level = Some("2");
        } else if let Some(value) = arg.strip_prefix("-Cdebuginfo=") {
            level = Some(value);
        } else if arg == "-C" {
            if let Some(value) = args.next().and_then(|next| next.strip_prefix("debuginfo=")) {
                level = Some(value);
            }
        }
    }
    match level {
        Some("2" | "full") => None,
        None | Some("0" | "none") => Some("false".to_owned()),
        Some(number @ "1") => Some(number.to_owned()),
        Some(other) => Some(format!("\"{other}\"")),
    }
}

/// Warns, once per run of the tool (a `watch` session builds many patches), that the layouts of
/// `crates` are not checked and what to set in the profile `profile` to have them checked.
pub fn warn_unchecked(crates: &[(&CrateRecord, String)], profile: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Some(message) = unchecked_warning(crates, profile) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            crate::shell::warning(message);
        }
    }
}

/// The warning for crates (with their `debug` settings) whose layouts are not checked.
fn unchecked_warning(crates: &[(&CrateRecord, String)], profile: &str) -> Option<String> {
    if crates.is_empty() {
        return None;
    }
    let names = crates
        .iter()
        .map(|(record, setting)| format!("`{}` (debug = {setting})", record.name))
        .collect::<Vec<_>>()
        .join(", ");
    let section = match profile {
        "dev" | "release" => format!("`[profile.{profile}]`"),
        other => format!("the `{other}` profile"),
    };
    Some(format!(
        "type layouts of {names} are not checked: that debug information describes no types, so a patch changing a type's layout would misread the running process's values; set `debug = true` in {section} to have such patches refused"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(args: &[&str]) -> Invocation {
        Invocation {
            rustc: "rustc".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Default::default(),
            cwd: "/".into(),
        }
    }

    #[test]
    fn the_warning_names_the_crates_their_setting_and_what_to_set() {
        let record: CrateRecord = serde_json::from_value(serde_json::json!({
            "name": "logic",
            "crate_types": ["lib"],
            "invocation": invocation(&["-C", "debuginfo=line-tables-only"]),
            "features": [],
            "sources": {},
        }))
        .unwrap();
        let setting = without_types(&record.invocation).unwrap();
        let message = unchecked_warning(&[(&record, setting)], "release").unwrap();
        assert!(
            message.starts_with(
                "type layouts of `logic` (debug = \"line-tables-only\") are not checked"
            ) && message.contains("set `debug = true` in `[profile.release]`"),
            "{message}"
        );
        assert_eq!(unchecked_warning(&[], "release"), None);
    }

    #[test]
    fn only_full_debug_information_describes_types() {
        let full = ["-C", "opt-level=3", "-C", "debuginfo=2"];
        assert_eq!(without_types(&invocation(&full)), None);
        assert_eq!(without_types(&invocation(&["-g"])), None);
        assert_eq!(without_types(&invocation(&["-Cdebuginfo=full"])), None);
        assert_eq!(
            without_types(&invocation(&["-C", "debuginfo=1"])).as_deref(),
            Some("1")
        );
        assert_eq!(
            without_types(&invocation(&["-C", "debuginfo=line-tables-only"])).as_deref(),
            Some("\"line-tables-only\"")
        );
        assert_eq!(
            without_types(&invocation(&["-C", "opt-level=3"])).as_deref(),
            Some("false")
        );
        // The last setting wins, as in rustc.
        let overridden = ["-C", "debuginfo=2", "-C", "debuginfo=limited"];
        assert_eq!(
            without_types(&invocation(&overridden)).as_deref(),
            Some("\"limited\"")
        );
    }
}
