//! What checking a patch reports without loading it: the hot functions and state types that
//! applying it would change, read from its manifest.

use super::update::state_to_migrate;
use crate::error::Error;
use crate::slot::HotKey;
use crate::state as hot_state;
use crate::table::Table;
use crate::wire::patch_file::PatchFile;
use crate::wire::protocol::{FunctionChange, StateChange};

/// The state types applying `patch` would migrate, from its manifest, with the values they have now.
pub(super) fn predicted_states(patch: &PatchFile) -> Result<Vec<StateChange>, Error> {
    let mut states = Vec::new();
    for carried in &patch.manifest.states {
        let running = hot_state::running_type(&carried.name, &[]);
        let Some(running) = state_to_migrate(
            patch,
            running,
            &carried.name,
            carried.version,
            carried.layout,
        )?
        else {
            continue;
        };
        states.push(StateChange {
            name: carried.name.clone(),
            from: running.version(),
            to: carried.version,
            values: hot_state::live_values(&carried.name),
        });
    }
    Ok(states)
}

/// What applying `patch` would change, from its manifest: each hot function it carries that
/// matches one of this process's, with its version now and the one the commit would give it.
pub(super) fn predicted_changes(patch: &PatchFile) -> Result<Vec<FunctionChange>, Error> {
    let table = Table::global();
    let keys: Vec<HotKey> = table.functions().into_iter().map(|f| f.key).collect();
    let mut changes = Vec::new();
    for carried in &patch.manifest.hot_functions {
        let mut matching = keys
            .iter()
            .filter(|key| original_path_matches(&carried.path, key));
        let (Some(&key), None) = (matching.next(), matching.next()) else {
            tracing::debug!(path = %carried.path, "hot function of the manifest not matched");
            continue;
        };
        let Some(running) = table.first_registration(key) else {
            continue;
        };
        if running.fingerprint() != carried.fingerprint {
            return Err(Error::SignatureChanged {
                patch: patch.short_id().to_owned(),
                key: key.to_string(),
                running: running.signature(),
                patched: format!("a type with fingerprint {:016x}", carried.fingerprint),
            });
        }
        if let Some((from, to)) = table.versions_of(key) {
            changes.push(FunctionChange {
                key: key.to_string(),
                from,
                to,
            });
        }
    }
    Ok(changes)
}

/// Whether `path`, the demangled path of a hot function's original code as a manifest records it
/// (with or without the fingerprint suffix), is the original of `key`:
/// `crate::module::name::__hot_original` for a free function,
/// `<crate::module::Type as crate::module::__HotOriginals_..>::__hot_original_name` for a method.
/// The key's own display form is accepted too.
fn original_path_matches(path: &str, key: &HotKey) -> bool {
    fn rest_is(rest: &str, expected: &str) -> bool {
        let Some(after) = rest.strip_prefix(expected) else {
            return false;
        };
        after.is_empty()
            || after.strip_prefix('_').is_some_and(|fingerprint| {
                fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }
    if path == key.to_string() {
        return true;
    }
    match key.self_ty {
        None => path
            .strip_prefix(key.module_path)
            .and_then(|rest| rest.strip_prefix("::"))
            .and_then(|rest| rest.strip_prefix(key.name))
            .is_some_and(|rest| rest_is(rest, "::__hot_original")),
        Some(self_ty) => {
            let head = format!("<{}::{self_ty} as ", key.module_path);
            path.strip_prefix(head.as_str())
                .and_then(|rest| rest.rsplit_once(">::"))
                .and_then(|(_, method)| method.strip_prefix("__hot_original_"))
                .is_some_and(|rest| rest_is(rest, key.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: HotKey = HotKey {
        module_path: "app::logic",
        self_ty: None,
        trait_name: None,
        name: "fee",
    };
    const METHOD: HotKey = HotKey {
        module_path: "app::logic",
        self_ty: Some("Book"),
        trait_name: None,
        name: "get",
    };

    #[test]
    fn manifest_paths_match_their_keys() {
        for path in [
            "app::logic::fee::__hot_original",
            "app::logic::fee::__hot_original_0123456789abcdef",
            "app::logic::fee",
        ] {
            assert!(original_path_matches(path, &FREE), "{path}");
        }
        for path in [
            "app::logic::fee2::__hot_original",
            "app::logic::fee::__hot_original_12",
            "app::logic::inner::fee::__hot_original",
        ] {
            assert!(!original_path_matches(path, &FREE), "{path}");
        }
        for path in [
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get",
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get_0123456789abcdef",
            "app::logic::Book::get",
        ] {
            assert!(original_path_matches(path, &METHOD), "{path}");
        }
        for path in [
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get_x",
            "<app::logic::Booking as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get",
        ] {
            assert!(!original_path_matches(path, &METHOD), "{path}");
        }
    }
}
