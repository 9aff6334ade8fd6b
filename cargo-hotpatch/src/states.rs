//! The `#[hot_state]` types of a binary, from the `.hotreload_states` records the macro writes:
//! what versions the base build and a patch have, so a layout change without a version bump is
//! refused at patch build and the manifest says which types a patch migrates.

use std::path::Path;

use anyhow::Context as _;
use hotreload_runtime::state::{parse_records, StateRecord};
use object::{Object as _, ObjectSection as _};

/// The section `#[hot_state]` records go in.
const SECTION: &str = ".hotreload_states";

/// The state records of the binary or library at `path` (none when it has no state types).
pub fn read(path: &Path) -> anyhow::Result<Vec<StateRecord>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let Some(section) = file.section_by_name(SECTION) else {
        return Ok(Vec::new());
    };
    let bytes = section
        .uncompressed_data()
        .with_context(|| format!("reading {SECTION} of {}", path.display()))?;
    Ok(parse_records(&bytes))
}

/// Of the types whose layout `changed` (by their Rust path), those that are `#[hot_state]` types
/// of the patch with a raised version: their values are migrated, so the change is allowed.
/// A state type whose layout changed with its version kept is an error naming it.
pub fn migrated_types(
    base: &[StateRecord],
    patch: &[StateRecord],
    changed: &[String],
) -> Result<Vec<String>, String> {
    let mut migrated = Vec::new();
    for record in patch {
        let Some(before) = base.iter().find(|b| b.name == record.name) else {
            continue;
        };
        let layout_changed = before.layout != record.layout || changed.contains(&record.path);
        if !layout_changed {
            continue;
        }
        if before.version == record.version {
            return Err(format!(
                "the layout of `#[hot_state]` type `{}` changed but its version stayed {}; raise it to `#[hot_state(version = {}, previous = ..)]` and write the migration (`impl Migrate<..>`), so live values are migrated",
                record.path,
                record.version,
                record.version + 1
            ));
        }
        migrated.push(record.path.clone());
    }
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: u32, layout: u64) -> StateRecord {
        StateRecord {
            name: name.into(),
            path: name.into(),
            version,
            layout,
        }
    }

    #[test]
    fn a_changed_state_type_needs_a_raised_version() {
        let base = [record("app::Session", 1, 10), record("app::Totals", 1, 20)];
        let raised = [record("app::Session", 2, 11), record("app::Totals", 1, 20)];
        assert_eq!(
            migrated_types(&base, &raised, &["app::Session".into()]),
            Ok(vec!["app::Session".to_owned()])
        );
        let kept = [record("app::Session", 1, 11)];
        let error = migrated_types(&base, &kept, &[]).unwrap_err();
        assert!(
            error.contains("`app::Session` changed but its version stayed 1"),
            "{error}"
        );
        // Debug information saw a change the fingerprint did not (a field's own type changed).
        let same = [record("app::Totals", 1, 20)];
        assert!(migrated_types(&base, &same, &["app::Totals".into()]).is_err());
        assert_eq!(migrated_types(&base, &same, &[]), Ok(vec![]));
    }
}
