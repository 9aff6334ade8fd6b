//! End to end: the realistic example, `examples/depot` (a tokio key-value, job queue and pub-sub
//! server with tracing spans in its `#[hot]` handlers and `#[hot_state]` sessions), run by
//! `cargo hotpatch run` with real clients connected.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use hotreload_tests::depot::{listening_address, Client};
use hotreload_tests::{locations, read_lines, wait_for_text, Fixture, Profile, ToolRun};

/// The depot run by `cargo hotpatch run`, with its snapshot in a directory of the test's;
/// ended when dropped.
struct Depot {
    run: ToolRun,
    address: String,
    _lines: Receiver<String>,
    _data: tempfile::TempDir,
}

impl Depot {
    fn start(fixture: &mut Fixture) -> Self {
        let data = tempfile::tempdir().expect("a directory for the snapshot");
        let snapshot = data.path().join("snapshot.json");
        fixture.set_env("DEPOT_SNAPSHOT", snapshot.to_str().unwrap());
        let (mut run, stdout) = ToolRun::start(fixture, "run", &[]);
        let lines = read_lines(stdout);
        let first = lines
            .recv_timeout(Profile::Dev.first_build())
            .unwrap_or_else(|_| {
                panic!(
                    "the depot never said where it listens:\n{}",
                    run.stderr_tail()
                )
            });
        let address = listening_address(&first);
        run.adopt_app();
        Depot {
            run,
            address,
            _lines: lines,
            _data: data,
        }
    }
}

/// Keys, a job, a published message and a JSON request over real connections; the runtime lists
/// the hot handlers (free functions and the `#[hot] impl Depot` methods) and one live
/// `#[hot_state]` session per connection.
#[test]
fn the_realistic_service_serves_clients_under_run() {
    let mut fixture = Fixture::depot(locations!(), Profile::Dev);
    let depot = Depot::start(&mut fixture);
    let mut client = Client::open(&depot.address);
    assert_eq!(client.ask("HELLO ada"), "$hello ada");
    assert_eq!(client.ask("SET greeting \"hello world\" EX 60"), "+OK");
    assert_eq!(client.ask("GET greeting"), "$hello world");
    assert_eq!(client.ask("INCRBY visits 5"), ":5");
    assert_eq!(
        client.ask("INCR greeting"),
        "-ERR value value at `greeting` is not an integer"
    );

    // A worker waiting for a job gets it when it is pushed.
    let mut worker = Client::open(&depot.address);
    assert_eq!(worker.ask("HELLO mailer"), "$hello mailer");
    worker.send("RESERVE mail WAIT 10000");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(client.ask("PUSH mail \"to bob\" PRIORITY 9"), ":1");
    assert_eq!(worker.line(), "=job 1 mail attempts=1 \"to bob\"");
    assert_eq!(worker.ask("ACK 1"), "+OK");

    let mut subscriber = Client::open(&depot.address);
    assert_eq!(subscriber.ask("SUBSCRIBE news"), ":1");
    assert_eq!(client.ask("PUBLISH news \"it works\""), ":1");
    assert_eq!(subscriber.line(), ">news \"it works\"");
    assert_eq!(
        client.ask(r#"{"cmd":"get","key":"visits","id":7}"#),
        r#"{"id":7,"ok":true,"result":"5"}"#
    );

    let status = fixture.status();
    let keys: Vec<&str> = status.functions.iter().map(|f| f.key.as_str()).collect();
    for handler in [
        "depot::handlers::execute",
        "depot::handlers::kv::handle",
        "depot::handlers::queue::wait_for_job",
        "Depot::info",
    ] {
        assert!(
            keys.iter().any(|key| key.ends_with(handler)),
            "status lists the hot handler {handler}: {keys:?}"
        );
    }
    let sessions = status
        .states
        .iter()
        .find(|s| s.name == "depot::session::Session")
        .unwrap_or_else(|| panic!("status lists the sessions: {:?}", status.states));
    assert_eq!((sessions.version, sessions.values), (1, 3));
    let said = depot.run.stderr_text();
    assert!(
        said.contains("client introduced itself"),
        "the handlers' tracing events reach the log:\n{said}"
    );

    assert_eq!(client.ask("HELLO ada"), "$hello ada");
    assert_eq!(client.ask("GET greeting"), "$hello world");
    let queue = worker.ask("QSTATS mail");
    assert!(
        queue.contains("\"pushed\":1") && queue.contains("\"completed\":1"),
        "the queue kept its counts: {queue}"
    );
    assert_eq!(client.ask("PUBLISH news again"), ":1");
    assert_eq!(subscriber.line(), ">news again");
    assert_eq!(client.ask("QUIT"), "+BYE");
}

/// Where the one-line edit goes: the reply to `HELLO`, in a handler with a tracing span and an
/// `info!` event.
const HELLO_HANDLER: &str = "depot/src/handlers/session.rs";
const HELLO_V1: &str = "Reply::Text(format!(\"hello {client}\"))";
const HELLO_V2: &str = "Reply::Text(format!(\"welcome {client}\"))";

/// A one-line edit of a handler body with tracing in it (a span and an `info!` event), built and
/// applied while clients stay connected: the new reply, the same session, and the patched
/// handler's event reaches the subscriber (the patch's fresh callsite registers itself).
#[test]
fn a_traced_handler_edit_is_patched_with_clients_connected() {
    let mut fixture = Fixture::depot(locations!(), Profile::Dev);
    let depot = Depot::start(&mut fixture);
    let mut client = Client::open(&depot.address);
    assert_eq!(client.ask("HELLO ada"), "$hello ada");
    assert_eq!(client.ask("SET kept yes"), "+OK");

    fixture.edit(HELLO_HANDLER, HELLO_V1, HELLO_V2);
    let (patch, built) = fixture.build("hello.hotpatch");
    let built = built.success();
    assert!(
        patch.is_file(),
        "`build` wrote no patch: {}",
        built.describe()
    );
    // Without debug information; its size is printed, not bounded: the crate's whole code is in
    // it, 1.7 MB of dev-build machine code for the depot.
    let library = crate::patch::mapped_library_len(&patch);
    eprintln!("the depot's one-line edit's patch library: {library} bytes");
    fixture.apply(&patch).success();

    assert_eq!(client.ask("HELLO ada"), "$welcome ada");
    assert_eq!(client.ask("GET kept"), "$yes");
    let whoami = client.ask("WHOAMI");
    assert!(
        whoami.contains("\"commands\":5") && whoami.contains("\"client\":\"ada\""),
        "the session kept its count and name: {whoami}"
    );
    // The app's stderr reaches the test through a reader thread, which may lag behind the reply
    // on a busy machine: wait for the event after the first (30 s at most), then count.
    const EVENT: &str = "client introduced itself";
    let first = wait_for_text(|| depot.run.stderr_text(), 0, EVENT).find(EVENT);
    let first = first.expect("the first event") + EVENT.len();
    wait_for_text(|| depot.run.stderr_text(), first, EVENT);
    let said = depot.run.stderr_text();
    assert_eq!(
        said.matches(EVENT).count(),
        2,
        "the patched handler's event reaches the subscriber:\n{said}"
    );
}
