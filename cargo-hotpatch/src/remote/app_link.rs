//! The connection from the app to the tool: under `run` and `watch` the tool listens on a socket
//! named in the app's environment (`HOTRELOAD_TOOL_SOCKET`), and the app's `init()` connects to it.
//! Before anything else on a connection, both sides prove they know the secret the tool put in
//! the app's environment (`HOTRELOAD_TOOL_SECRET`): another process that connects to the socket
//! is refused, and never mistaken for the app. The tool then knows when the app is up, checks it
//! is the build it made, and sends it requests on that connection. [`app_command`] starts an app
//! wired to both sockets.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::hex;
use hotreload_runtime::wire::protocol::{
    link_proof, proof_matches, LinkHandshake, LinkRole, PatchReport, Reply, Request,
    TOOL_SECRET_ENV,
};

use super::codec::{self, Peer};
use hotreload_runtime::wire::patch_file::short_id;

use crate::shell::{status, warning};

/// The environment variable the app's runtime reads.
pub const TOOL_SOCKET_ENV: &str = "HOTRELOAD_TOOL_SOCKET";

/// The tool's end: a listening socket and the app's connection, once it has connected.
pub struct AppLink {
    path: PathBuf,
    /// What the app proves it knows: random, given to the apps this tool starts only.
    secret: String,
    connection: Arc<Mutex<Option<BufReader<UnixStream>>>>,
    expected_build: Arc<Mutex<String>>,
}

impl AppLink {
    /// Listens at `dir/tool-<pid>.sock` for the apps this tool starts.
    pub fn listen(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        remove_stale_sockets(dir);
        let name = format!("hotpatch-tool-{}.sock", std::process::id());
        let mut path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            // A Unix socket path is limited to about a hundred bytes: a deep target directory
            // does not fit, the temporary directory does.
            Err(_) => {
                path = std::env::temp_dir().join(&name);
                let _ = std::fs::remove_file(&path);
                UnixListener::bind(&path)
                    .with_context(|| format!("listening on {}", path.display()))?
            }
        };
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        let link = AppLink {
            path,
            secret: hex(&secret),
            connection: Arc::new(Mutex::new(None)),
            expected_build: Arc::new(Mutex::new(String::new())),
        };
        let connection = Arc::clone(&link.connection);
        let expected = Arc::clone(&link.expected_build);
        let secret = link.secret.clone();
        std::thread::Builder::new()
            .name("app-link".into())
            .spawn(move || accept_apps(&listener, &secret, &connection, &expected))
            .context("starting the thread that waits for the app")?;
        Ok(link)
    }

    /// The socket's path, for the app's environment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The build the app is expected to run; an app that connects running another is reported.
    pub fn expect_build(&self, build_id: &str) {
        if let Ok(mut expected) = self.expected_build.lock() {
            *expected = build_id.to_owned();
        }
        // A new app is about to start: the old connection is of no use.
        if let Ok(mut connection) = self.connection.lock() {
            *connection = None;
        }
    }

    /// Applies `patch` to the connected app; `None` if no app is connected.
    pub fn apply(&self, patch: &Path) -> Option<anyhow::Result<PatchReport>> {
        let path = patch.to_owned();
        // The app under `run` or `watch` redirects entries anyway; asking is harmless.
        let reply = self.request(&Request::Apply {
            path,
            allow_entry_redirects: true,
        })?;
        Some(reply.and_then(|reply| codec::patch_report(reply, Peer::App)))
    }

    /// Sends a request to the connected app; `None` if no app is connected.
    fn request(&self, request: &Request) -> Option<anyhow::Result<Reply>> {
        let mut connection = self.connection.lock().ok()?;
        let reader = connection.as_mut()?;
        let result = codec::exchange(reader, request, Peer::App);
        if result.is_err() {
            // The app went away: forget the connection.
            *connection = None;
        }
        Some(result)
    }
}

/// Greets each app that connects to the tool's socket and proves it knows `secret`, and keeps
/// its connection for requests.
fn accept_apps(
    listener: &UnixListener,
    secret: &str,
    connection: &Mutex<Option<BufReader<UnixStream>>>,
    expected: &Mutex<String>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut reader = BufReader::new(stream);
        if let Err(error) = authenticate(&mut reader, secret) {
            warning(format!(
                "refused a connection to the tool's socket: {error:#}; only the app this tool started may connect"
            ));
            continue;
        }
        let Ok(Reply::Hello { pid, build_id, .. }) =
            codec::exchange(&mut reader, &Request::Hello, Peer::App)
        else {
            warning("a process connected to the tool's socket but did not answer `hello`");
            continue;
        };
        let expected = expected.lock().map(|e| e.clone()).unwrap_or_default();
        if !expected.is_empty() && expected != build_id {
            warning(format!(
                "the app that connected (pid {pid}) runs build {}, not the build this tool made ({}); patches will be refused",
                short_id(&build_id),
                short_id(&expected)
            ));
        } else {
            status(
                "Connected",
                format!("app (pid {pid}, build {})", short_id(&build_id)),
            );
        }
        if let Ok(mut slot) = connection.lock() {
            *slot = Some(reader);
        }
    }
}

/// How long a process that connected has to prove it is the app.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The handshake, the tool's side: answer the app's challenge, challenge it, check its proof.
fn authenticate(reader: &mut BufReader<UnixStream>, secret: &str) -> anyhow::Result<()> {
    reader.get_ref().set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let theirs = read_handshake(reader)?
        .challenge
        .context("the process sent no challenge")?;
    let mut challenge = [0u8; 16];
    getrandom::fill(&mut challenge).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let challenge = hex(&challenge);
    let mut line = serde_json::to_string(&LinkHandshake {
        challenge: Some(challenge.clone()),
        proof: Some(link_proof(secret, LinkRole::Tool, &theirs)),
    })?;
    line.push('\n');
    reader.get_mut().write_all(line.as_bytes())?;
    let answer = read_handshake(reader)?;
    let expected = link_proof(secret, LinkRole::App, &challenge);
    anyhow::ensure!(
        proof_matches(answer.proof.as_deref(), &expected),
        "the process did not prove it knows the secret this tool gave its app"
    );
    reader.get_ref().set_read_timeout(None)?;
    Ok(())
}

fn read_handshake(reader: &mut BufReader<UnixStream>) -> anyhow::Result<LinkHandshake> {
    let mut line = String::new();
    std::io::Read::take(&mut *reader, 1024)
        .read_line(&mut line)
        .context("reading the handshake")?;
    serde_json::from_str(&line).with_context(|| format!("not a handshake: {line:?}"))
}

/// Removes the sockets of tools that ended without removing theirs (killed): their pid is gone.
fn remove_stale_sockets(dir: &Path) {
    // Whether a pid is alive is read from /proc.
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hotpatch-tool-"))
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for AppLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The command that starts the app: with its control socket and the tool's socket to connect to,
/// and (on Linux) told to stop when the tool stops, so an app is never left running without the
/// tool that watches it.
pub fn app_command(executable: &Path, args: &[String], socket: &Path, link: &AppLink) -> Command {
    let mut command = Command::new(executable);
    command
        .args(args)
        .env("HOTRELOAD_CONTROL_SOCKET", socket)
        .env(TOOL_SOCKET_ENV, link.path())
        .env(TOOL_SECRET_ENV, &link.secret);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` is async-signal-safe and touches no memory of the
        // parent; it runs in the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    command
}
