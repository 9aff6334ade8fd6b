//! The control socket: requests and replies, and every refusal before a patch library runs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use hotreload_runtime::wire::patch_file::{Manifest, PatchFile, PatchedHotFunction};
use hotreload_runtime::wire::protocol::{
    ErrorReply, Reply, Request, Response, StatusReport, PROTOCOL_VERSION,
};
use hotreload_runtime::{control, hot};

/// Tests of this file share the process's table and patch list; they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[hot]
fn control_fee(qty: u64) -> u64 {
    qty * 3
}

#[hot]
fn control_label(qty: u64) -> String {
    format!("{qty} pieces")
}

/// A path in the temporary directory, removed when dropped.
struct Temp(PathBuf);

impl std::ops::Deref for Temp {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for Temp {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_path(name: &str) -> Temp {
    Temp(std::env::temp_dir().join(format!("hotreload-test-{}-{name}", std::process::id())))
}

/// A control server on a fresh socket of its own.
fn server(name: &str) -> Temp {
    let path = temp_path(&format!("{name}.sock"));
    let _ = std::fs::remove_file(&*path);
    control::serve(&*path).expect("the control server starts");
    path
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(socket: &PathBuf) -> Self {
        let stream = UnixStream::connect(socket).expect("connects");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send_line(&mut self, line: &str) -> Response {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
        let mut answer = String::new();
        self.reader.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad reply {answer:?}: {e}"))
    }

    fn send(&mut self, request: &Request) -> Response {
        self.send_line(&serde_json::to_string(request).unwrap())
    }

    fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn request(socket: &PathBuf, request: Request) -> Response {
    Client::connect(socket).send(&request)
}

fn expect_error(response: Response, step: &str) -> String {
    match response {
        Response::Error(ErrorReply {
            step: found,
            message,
        }) => {
            assert_eq!(found, step, "{message}");
            message
        }
        other => panic!("expected an error at step {step}, got {other:?}"),
    }
}

fn status(socket: &PathBuf) -> StatusReport {
    match request(socket, Request::Status) {
        Response::Ok(Reply::Status(status)) => status,
        other => panic!("{other:?}"),
    }
}

fn own_build_id() -> String {
    hotreload_runtime::build_id().unwrap().to_owned()
}

fn manifest(build_id: &str) -> Manifest {
    let mut manifest = support::manifest(build_id);
    manifest.crates = vec!["control".into()];
    manifest
}

/// Writes `bytes` to a temporary file named after `name`.
fn patch_file(name: &str, bytes: &[u8]) -> Temp {
    let path = temp_path(&format!("{name}.hotpatch"));
    std::fs::write(&*path, bytes).unwrap();
    path
}

/// A well-formed patch for this build whose library is not a library.
fn garbage_patch(name: &str, hot_functions: Vec<PatchedHotFunction>) -> (PatchFile, Temp) {
    let mut manifest = manifest(&own_build_id());
    manifest.hot_functions = hot_functions;
    let patch = PatchFile::new(manifest, b"this is not an ELF shared object".to_vec());
    let path = patch_file(name, &patch.to_bytes());
    (patch, path)
}

fn fingerprint_of(key: &str) -> u64 {
    hotreload_runtime::function(key).unwrap().fingerprint()
}

#[test]
fn hello_names_this_process_and_its_build() {
    let _serial = serial();
    let socket = server("hello");
    let Response::Ok(Reply::Hello {
        protocol,
        pid,
        build_id,
    }) = request(&socket, Request::Hello)
    else {
        panic!("no hello");
    };
    assert_eq!(protocol, PROTOCOL_VERSION);
    assert_eq!(pid, std::process::id());
    assert_eq!(build_id.len(), 40, "{build_id}");
    assert!(build_id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(build_id, own_build_id());
    // Stable: asked again, the same.
    let Response::Ok(Reply::Hello {
        build_id: again, ..
    }) = request(&socket, Request::Hello)
    else {
        panic!("no hello");
    };
    assert_eq!(again, build_id);

    // What `readelf -n` says about this executable, where readelf is installed.
    let exe = std::env::current_exe().unwrap();
    if let Ok(output) = std::process::Command::new("readelf")
        .arg("-n")
        .arg(&exe)
        .output()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        let from_readelf = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("Build ID: "))
            .map(str::trim)
            .expect("readelf shows a build id");
        assert_eq!(from_readelf, build_id);
    }
}

#[test]
fn status_lists_the_hot_functions() {
    let _serial = serial();
    let socket = server("status");
    let status = status(&socket);
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.build_id, own_build_id());
    for key in ["control::control_fee", "control::control_label"] {
        let function = status
            .functions
            .iter()
            .find(|f| f.key == key)
            .unwrap_or_else(|| panic!("{key} missing from {:?}", status.functions));
        assert_eq!(function.version, 0);
        assert_eq!(function.patch, None);
    }
}

#[test]
fn malformed_requests_close_the_connection_and_the_server_goes_on() {
    let _serial = serial();
    let socket = server("malformed");

    let mut client = Client::connect(&socket);
    // Several requests on one connection.
    assert!(matches!(
        client.send(&Request::Hello),
        Response::Ok(Reply::Hello { .. })
    ));
    assert!(matches!(
        client.send(&Request::Status),
        Response::Ok(Reply::Status(_))
    ));
    let message = expect_error(client.send_line("this is not json"), "request");
    assert!(message.contains("malformed"), "{message}");
    assert!(client.is_closed());

    let mut client = Client::connect(&socket);
    expect_error(client.send_line(r#"{"command":"explode"}"#), "request");
    assert!(client.is_closed());

    let mut client = Client::connect(&socket);
    expect_error(client.send_line(r#"{"command":"apply"}"#), "request");
    assert!(client.is_closed());

    assert!(matches!(
        request(&socket, Request::Hello),
        Response::Ok(Reply::Hello { .. })
    ));
}

#[test]
fn the_socket_is_private_and_stale_sockets_are_replaced() {
    let _serial = serial();
    let socket = server("mode");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    // A live socket is not taken over.
    let error = control::serve(&socket).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");

    // A socket file nobody listens on any more is replaced.
    let stale = temp_path("stale.sock");
    let _ = std::fs::remove_file(&stale);
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    control::serve(&stale).unwrap();
    assert!(matches!(
        request(&stale, Request::Hello),
        Response::Ok(Reply::Hello { .. })
    ));

    // Anything else at the path is left alone.
    let file = temp_path("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    assert!(control::serve(&file).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn unreadable_corrupt_and_foreign_patches_are_refused_at_their_step() {
    let _serial = serial();
    let socket = server("refusals");
    let before = status(&socket);

    let missing = temp_path("does-not-exist.hotpatch");
    let message = expect_error(
        request(
            &socket,
            Request::Apply {
                path: missing.clone(),
                allow_entry_redirects: false,
            },
        ),
        "read",
    );
    assert!(message.contains("does-not-exist"), "{message}");
    expect_error(
        request(
            &socket,
            Request::Check {
                path: missing.to_path_buf(),
            },
        ),
        "read",
    );

    let (patch, _) = garbage_patch("integrity-source", vec![]);
    let bytes = patch.to_bytes();
    let truncated = patch_file("truncated", &bytes[..bytes.len() - 3]);
    let message = expect_error(
        request(
            &socket,
            Request::Apply {
                path: truncated.to_path_buf(),
                allow_entry_redirects: false,
            },
        ),
        "integrity",
    );
    assert!(message.contains("truncated"), "{message}");
    let mut flipped = bytes.clone();
    // The library's last byte: the four after it are the (empty) signature block's length.
    let last_of_library = flipped.len() - 5;
    flipped[last_of_library] ^= 0x40;
    let corrupt = patch_file("corrupt", &flipped);
    let message = expect_error(
        request(
            &socket,
            Request::Check {
                path: corrupt.clone(),
            },
        ),
        "integrity",
    );
    assert!(message.contains("sha256"), "{message}");
    expect_error(
        request(
            &socket,
            Request::Apply {
                path: corrupt.to_path_buf(),
                allow_entry_redirects: false,
            },
        ),
        "integrity",
    );
    let not_a_patch = patch_file("not-a-patch", b"GIF89a....");
    expect_error(
        request(
            &socket,
            Request::Apply {
                path: not_a_patch.to_path_buf(),
                allow_entry_redirects: false,
            },
        ),
        "integrity",
    );

    let other_build = "0123456789abcdef0123456789abcdef01234567";
    let foreign = PatchFile::new(manifest(other_build), b"\x7fELF...".to_vec());
    let foreign_path = patch_file("foreign", &foreign.to_bytes());
    for request_kind in [
        Request::Check {
            path: foreign_path.clone(),
        },
        Request::Apply {
            path: foreign_path.clone(),
            allow_entry_redirects: false,
        },
    ] {
        let message = expect_error(request(&socket, request_kind), "base_build");
        assert!(message.contains(other_build), "{message}");
        assert!(message.contains(&own_build_id()), "{message}");
        assert!(message.contains("rebuild the patch"), "{message}");
    }

    let after = status(&socket);
    assert_eq!(after.functions, before.functions);
    assert_eq!(after.history, before.history);
    assert_eq!(after.mapped_bytes, before.mapped_bytes);
}

#[test]
fn check_changes_nothing_and_a_library_that_does_not_load_is_refused() {
    let _serial = serial();
    let socket = server("load");
    let before = status(&socket);

    let (patch, path) = garbage_patch(
        "garbage-library",
        vec![
            PatchedHotFunction {
                path: "control::control_fee::__hot_original".into(),
                fingerprint: fingerprint_of("control::control_fee"),
            },
            PatchedHotFunction {
                path: "control::brand_new::__hot_original".into(),
                fingerprint: 7,
            },
        ],
    );
    let Response::Ok(Reply::Patch(report)) =
        request(&socket, Request::Check { path: path.clone() })
    else {
        panic!("check refused a well-formed patch for this build");
    };
    assert!(report.dry_run);
    assert!(!report.already_applied);
    assert_eq!(report.patch_id, patch.id);
    assert_eq!(report.load_us, 0);
    assert_eq!(report.commit_us, 0);
    // It would change the function it carries that this process has, nothing else.
    let keys: Vec<_> = report.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["control::control_fee"]);
    assert_eq!(report.changes[0].from, 0);
    assert!(report.changes[0].to > 0);
    assert_eq!(status(&socket).functions, before.functions);

    let message = expect_error(
        request(
            &socket,
            Request::Apply {
                path: path.to_path_buf(),
                allow_entry_redirects: false,
            },
        ),
        "load",
    );
    assert!(message.contains("dlopen"), "{message}");
    assert!(message.contains(patch.short_id()), "{message}");
    assert_eq!(control_fee(2), 6);
    assert_eq!(control_label(2), "2 pieces");

    let after = status(&socket);
    assert_eq!(after.functions, before.functions);
    assert_eq!(after.history, before.history);
    assert_eq!(after.patches, before.patches);
    assert_eq!(after.mapped_bytes, before.mapped_bytes);
    expect_error(request(&socket, Request::Rollback), "rollback");
}

#[test]
fn check_refuses_a_changed_signature_from_the_manifest() {
    let _serial = serial();
    let socket = server("signature");
    let fingerprint = fingerprint_of("control::control_label");
    let (_, path) = garbage_patch(
        "changed-signature",
        vec![PatchedHotFunction {
            path: "control::control_label::__hot_original".into(),
            fingerprint: fingerprint ^ 1,
        }],
    );
    let message = expect_error(
        request(
            &socket,
            Request::Check {
                path: path.to_path_buf(),
            },
        ),
        "signature",
    );
    assert!(message.contains("control::control_label"), "{message}");
    assert!(message.contains("restart"), "{message}");
}

/// Builds a shared object whose constructor creates `marker`, or `None` without a C compiler.
fn shared_object(name: &str, marker: &std::path::Path) -> Option<Vec<u8>> {
    let source = temp_path(&format!("{name}.c"));
    let object = temp_path(&format!("{name}.so"));
    std::fs::write(
        &*source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void mark(void) {{\n\
             int fd = open({:?}, O_CREAT | O_WRONLY, 0600); if (fd >= 0) close(fd); }}\n\
             int {name}_value(void) {{ return 7; }}\n",
            marker.to_str().unwrap()
        ),
    )
    .unwrap();
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&*object)
        .arg(&*source)
        .status()
        .ok()?;
    status.success().then(|| std::fs::read(&*object).unwrap())
}

#[test]
fn libraries_load_from_memory_and_stay_mapped() {
    let _serial = serial();
    let socket = server("real-load");
    let before = status(&socket);
    let mut loaded = 0;
    for name in ["first_lib", "second_lib"] {
        let marker = temp_path(&format!("{name}.ran"));
        let Some(library) = shared_object(name, &marker) else {
            eprintln!("no C compiler: skipping the loading of real shared objects");
            return;
        };
        let patch = PatchFile::new(manifest(&own_build_id()), library);
        let path = patch_file(name, &patch.to_bytes());
        // The library loads (its constructor runs) but carries no hot function: refused, and
        // nothing changes.
        let message = expect_error(
            request(
                &socket,
                Request::Apply {
                    path: path.to_path_buf(),
                    allow_entry_redirects: false,
                },
            ),
            "load",
        );
        assert!(message.contains("no hot function"), "{message}");
        assert!(marker.exists(), "the constructor of {name} did not run");
        loaded += patch.library.len() as u64;
        // Applying it again does not load it again.
        std::fs::remove_file(&*marker).unwrap();
        expect_error(
            request(
                &socket,
                Request::Apply {
                    path: path.to_path_buf(),
                    allow_entry_redirects: false,
                },
            ),
            "load",
        );
        assert!(!marker.exists(), "{name} was loaded twice");
    }
    let after = status(&socket);
    assert_eq!(after.mapped_bytes, before.mapped_bytes + loaded);
    assert_eq!(after.functions, before.functions);
    assert_eq!(after.history, before.history);
    assert_eq!(after.patches, before.patches);
}
