//! Requests on an app's control socket, sent through the tool's own client, and what the tests read
//! from patch files.

use std::path::Path;

use cargo_hotpatch::remote::client::request;
use hotreload_runtime::wire::patch_file::PatchFile;
use hotreload_runtime::wire::protocol::{Reply, Request};

/// The pid of the process answering `hello` on `socket`.
pub fn hello(socket: &Path) -> Result<u32, String> {
    let reply = request(socket, &Request::Hello).map_err(|error| format!("{error:#}"))?;
    match reply {
        Reply::Hello { pid, .. } => Ok(pid),
        other => Err(format!(
            "`hello` was answered with another reply: {other:?}"
        )),
    }
}

/// The patch id of a patch file.
pub fn patch_id(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a patch file");
    PatchFile::parse(&bytes).expect("a valid patch file").id
}
