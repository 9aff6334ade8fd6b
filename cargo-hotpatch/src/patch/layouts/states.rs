//! The `#[hot_state]` types of a binary (from the `.hotreload_states` records the macro writes,
//! read by [`crate::object::read::state_records`]): what versions the base build and a patch
//! have, so a layout change without a version bump is refused at patch build and the manifest
//! says which types a patch migrates.

use hotreload_runtime::wire::state_record::StateRecord;

use crate::object::dwarf::Layouts;
use crate::patch::layouts::type_layouts;
use crate::patch::refusal::Refusal;

/// Of the types whose layout `changed` (by their Rust path), those that are `#[hot_state]` types
/// of the patch with a raised version: their values are migrated, so the change is allowed.
/// A state type whose layout changed with its version kept is an error naming it, unless
/// `bridged` (a patch for `watch`): then serde carries its values across, and the process refuses
/// the patch if it cannot.
pub fn migrated_types(
    base: &[StateRecord],
    patch: &[StateRecord],
    changed: &[String],
    bridged: bool,
) -> Result<Vec<String>, Refusal> {
    let mut migrated = Vec::new();
    for record in patch {
        let Some(before) = base.iter().find(|b| b.name == record.name) else {
            continue;
        };
        let layout_changed = before.layout != record.layout || changed.contains(&record.path);
        if !layout_changed {
            continue;
        }
        if before.version == record.version && !bridged {
            return Err(Refusal::StateVersionKept {
                state_type: record.path.clone(),
                version: record.version,
            });
        }
        migrated.push(record.path.clone());
    }
    Ok(migrated)
}

/// Decides the changed plain types (`changed`, by path; `#[hot_state]` types already taken out)
/// that `#[hot_state]` values hold: one held only by state types whose version was raised
/// (`migrated`) is rebuilt with them by the migration, and allowed; one held by a state type that
/// kept its version is an error naming that type. Returns the allowed ones; the rest of `changed`
/// is for the caller to refuse.
pub fn held_by_migrated_state(
    now: &Layouts,
    patch: &[StateRecord],
    migrated: &[String],
    changed: &[String],
) -> Result<Vec<String>, Refusal> {
    let mut allowed = Vec::new();
    for record in patch {
        let held = type_layouts::held_by(now, &record.path);
        let is_migrated = migrated.contains(&record.path);
        for plain in changed.iter().filter(|c| held.contains(*c)) {
            if !is_migrated {
                return Err(Refusal::HeldTypeChanged {
                    held: plain.clone(),
                    state_type: record.path.clone(),
                });
            }
            if !allowed.contains(plain) {
                allowed.push(plain.clone());
            }
        }
    }
    Ok(allowed)
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
            migrated_types(&base, &raised, &["app::Session".into()], false),
            Ok(vec!["app::Session".to_owned()])
        );
        let kept = [record("app::Session", 1, 11)];
        let error = migrated_types(&base, &kept, &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`app::Session` changed but its version stayed 1"),
            "{error}"
        );
        // Debug information saw a change the fingerprint did not (a field's own type changed).
        let same = [record("app::Totals", 1, 20)];
        assert!(migrated_types(&base, &same, &["app::Totals".into()], false).is_err());
        assert_eq!(migrated_types(&base, &same, &[], false), Ok(vec![]));
        // Under watch, serde bridges a change of the same version.
        assert_eq!(
            migrated_types(&base, &kept, &[], true),
            Ok(vec!["app::Session".to_owned()])
        );
    }

    #[test]
    fn a_plain_type_held_by_state_changes_only_with_the_state_s_version() {
        let now: Layouts = [
            (
                "app::Session".to_owned(),
                "(structure name=Session (member DW_AT_type=structure:Tier:1))".to_owned(),
            ),
            ("app::Tier".to_owned(), "(enum name=Tier)".to_owned()),
            ("app::Loose".to_owned(), "(structure name=Loose)".to_owned()),
        ]
        .into_iter()
        .collect();
        let patch = [record("app::Session", 3, 30)];
        let changed = ["app::Tier".to_owned(), "app::Loose".to_owned()];
        assert_eq!(
            held_by_migrated_state(&now, &patch, &["app::Session".into()], &changed),
            Ok(vec!["app::Tier".to_owned()])
        );
        let error = held_by_migrated_state(&now, &patch, &[], &changed)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`app::Tier` changed")
                && error.contains("raise `app::Session`'s version"),
            "{error}"
        );
    }
}
