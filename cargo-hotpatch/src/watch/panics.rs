//! Panics in patched code, as `watch` shows them: the app rolled the patch back by itself
//! (rollback on panic, see `hotreload_runtime::docs::patterns`); `watch` asks it between saves
//! and says what panicked, where, and what was rolled back.

use hotreload_runtime::wire::patch_file::short_id;
use hotreload_runtime::wire::protocol::PatchPanic;

use super::session::{PanicsSeen, Session};
use crate::shell::{error_line, status};

impl Session {
    /// Shows the panics that rolled a patch back since the last look.
    pub(super) fn report_panics(&mut self) {
        let pid = self.app.as_ref().map(|app| app.id());
        if pid != self.panics_seen.pid {
            self.panics_seen = PanicsSeen { pid, last: 0 };
        }
        // An app that cannot answer is noticed elsewhere (its exit, the next apply).
        let Some(Ok(panics)) = self.link.panics(self.panics_seen.last) else {
            return;
        };
        for panic in &panics {
            show(panic);
            self.panics_seen.last = panic.sequence;
        }
    }
}

fn show(panic: &PatchPanic) {
    let location = panic.location.as_deref().unwrap_or("an unknown location");
    error_line(format!(
        "patched code panicked in {} (thread '{}') at {location}: {}",
        panic.function, panic.thread, panic.message
    ));
    match &panic.error {
        None => {
            let patches: Vec<&str> = panic.rolled_back.iter().map(|id| short_id(id)).collect();
            let call = if panic.rerun {
                "the call ran again on it"
            } else {
                "the panic went on to the caller"
            };
            status(
                "Rolled back",
                format!(
                    "patch {} after the panic; the app runs its last good code ({call}); save to patch again",
                    patches.join(", ")
                ),
            );
        }
        Some(error) => error_line(format!("the rollback after the panic failed: {error}")),
    }
}
