//! The update a patch commits: the new code of each hot function it carries (signatures
//! checked), the state types to migrate, and the entry redirects it sets.

use super::entries;
use crate::error::Error;
use crate::slot::HotFunction;
use crate::state::{self as hot_state, StateType};
use crate::table::{Table, Update};
use crate::wire::patch_file::PatchFile;

/// One replacement for each registration of the library under a key the process already has,
/// after checking every signature. A registration under a new key is a new function: the table
/// has taken it in, and only the patch's own code calls it.
///
/// Each `#[hot_state]` type of the library whose layout differs from the version values are kept
/// at gets its values migrated to the library's version; one whose layout changed but whose
/// version did not is refused, unless the tool started the process (serde bridges it then).
///
/// Under rollback on panic, the slots get each replacement's contained entry.
///
/// The update also makes the entry redirects exactly the manifest's (patches are cumulative: one
/// that redirects fewer functions than the patch before restores the others).
pub(super) fn update_for(
    patch: &PatchFile,
    registrations: &[&'static HotFunction],
    states: &[&'static StateType],
    library: &std::ffi::CStr,
) -> Result<Update, Error> {
    let table = Table::global();
    let mut update = Update::new(patch.id.clone());
    for &ty in states {
        let running = hot_state::running_type(ty.name(), states);
        if state_to_migrate(patch, running, ty.name(), ty.version(), ty.layout())?.is_some() {
            update = update.migrate_to(ty);
        }
    }
    for &registration in registrations {
        let Some(first) = table.first_registration(registration.key()) else {
            continue;
        };
        if std::ptr::eq(first, registration) {
            tracing::debug!(key = %registration.key(), "patch adds a hot function");
            continue;
        }
        if first.fingerprint() != registration.fingerprint() {
            return Err(Error::SignatureChanged {
                patch: patch.short_id().to_owned(),
                key: first.key().to_string(),
                running: first.signature(),
                patched: registration.signature().to_owned(),
            });
        }
        // SAFETY: equal fingerprints mean the patch's function has the slot's written type
        // (arguments, return type, ABI), and its library stays loaded for the rest of the process.
        update = unsafe { update.replace_with(first, registration) };
    }
    let targets = entries::targets(patch, library)?;
    // A patch that redirects nothing still gives redirected entries their own code back.
    let restores = !crate::entry::redirected_entries().is_empty();
    if update.is_empty() && targets.is_empty() && !restores {
        return Err(Error::NoHotFunctions {
            patch: patch.short_id().to_owned(),
        });
    }
    // SAFETY: each target is the new code of its function as the patch's tool found it, inside
    // the loaded library's code (checked by `targets`), which stays loaded for the process's life.
    Ok(unsafe { update.redirect_entries(targets, entries::limits()) })
}

/// Whether the patch's version of a state type (`version`, `layout`) needs the values of the
/// version the process runs (`running`; `None` for a type new to it) migrated: returns the running
/// version if so. A changed layout with the same version is refused, except under the tool (see
/// [`crate::state`]).
pub(super) fn state_to_migrate(
    patch: &PatchFile,
    running: Option<&'static StateType>,
    name: &str,
    version: u32,
    layout: u64,
) -> Result<Option<&'static StateType>, Error> {
    let Some(running) = running else {
        tracing::debug!(name, "patch adds a state type");
        return Ok(None);
    };
    if running.layout() == layout {
        return Ok(None);
    }
    // Under the tool, serde carries the values across a change of the same version.
    if running.version() == version && !hot_state::same_version_bridged() {
        return Err(Error::StateVersionNotRaised {
            patch: patch.short_id().to_owned(),
            name: name.to_owned(),
            version,
        });
    }
    Ok(Some(running))
}
