//! `cargo hotpatch watch`: run the app, and on every save patch what changed into it.
//!
//! [`events`] turns file events into saves, [`session`] keeps the app running, and [`cycle`]
//! turns one save into a patch applied to it. What cannot be patched (a manifest, a build
//! script, a binary crate, a hot signature) is explained in one line, then the app is rebuilt and
//! restarted, unless `--no-restart` is given.

mod cycle;
mod events;
mod interrupt;
mod panics;
mod running;
mod session;

use std::sync::mpsc;

use anyhow::Context as _;
use notify::Watcher as _;

use crate::cli::WatchArgs;
use crate::host::HotpatchDirs;
use crate::shell::status;
use session::Session;

/// Runs `watch`; returns when the watcher fails or watch is interrupted (Ctrl-C). `verbose` also lists the versions now running
/// after each patch.
pub fn watch(args: WatchArgs, verbose: bool) -> anyhow::Result<i32> {
    let layout = HotpatchDirs::of(&args.run.selection)?;
    let (events_tx, events) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    })
    .context("starting the file watcher")?;
    let roots = events::watch_roots(&args, &layout)?;
    for (path, mode) in &roots {
        watcher
            .watch(path, *mode)
            .with_context(|| format!("watching {}", path.display()))?;
    }
    interrupt::install();
    let mut session = Session::start(args, layout, verbose)?;
    status(
        "Watching",
        format!(
            "{} director{} for changes; save a file to patch the running app",
            roots.len(),
            if roots.len() == 1 { "y" } else { "ies" }
        ),
    );
    loop {
        if interrupt::interrupted() {
            status("Stopping", "the app and watch (interrupted)");
            // Dropping the session stops the app.
            return Ok(interrupt::INTERRUPTED_EXIT);
        }
        // Between saves, the session notices the app exiting and prepares compilers.
        let is_input =
            |path: &std::path::Path| events::is_input(path, &session.layout, &session.seen);
        match events::next_burst(&events, &is_input)? {
            Some((paths, first_event)) => session.handle(paths, first_event),
            None => session.when_idle(),
        }
    }
}
