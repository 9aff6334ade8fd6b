//! End to end: the realistic example, `examples/depot` (a tokio key-value, job queue and pub-sub
//! server with tracing spans in its `#[hot]` handlers and `#[hot_state]` sessions), run by
//! `cargo hotpatch run` (dev and release) and `watch` with real clients connected.

use std::time::Duration;

use hotreload_tests::depot::{ask_until, Client, RunningDepot as Depot};
use hotreload_tests::watch::WATCH_PATCHES;
use hotreload_tests::{
    children_of, hello, locations, wait_for_text, waits_for_arguments, Fixture, Profile,
};

/// Keys, a job, a published message and a JSON request over real connections; the runtime lists
/// the hot handlers (free functions and the `#[hot] impl Depot` methods) and one live
/// `#[hot_state]` session per connection.
#[test]
fn the_realistic_service_serves_clients_under_run() {
    let mut fixture = Fixture::depot(locations!(), Profile::Dev);
    let depot = Depot::start(&mut fixture, "run");
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
    let depot = Depot::start(&mut fixture, "run");
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
    // Without debug information, and only the code the edit changed: every function it left
    // alone runs as the running copy (the crate's whole code was 1.7 MB of it).
    let library = crate::patch::mapped_library_len(&patch);
    eprintln!("the depot's one-line edit's patch library: {library} bytes");
    assert!(
        library <= 1_000_000,
        "a one-line edit of the depot makes a patch library of at most 1 MB, not {library} bytes"
    );
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

    // The span of a method of the `#[hot] impl Depot` block wraps its entry, which the process
    // keeps: a change to it is refused, naming the method, rather than silently not applied.
    fixture.edit(
        "depot/src/service.rs",
        "#[tracing::instrument(level = \"debug\", skip(self))]\n    pub fn info",
        "#[tracing::instrument(level = \"info\", skip(self))]\n    pub fn info",
    );
    fixture
        .build_refused("info.hotpatch", "entry-attribute-changed")
        .stderr_names(&["Depot::info", "entry", "restart"]);
    assert_eq!(client.ask("HELLO ada"), "$welcome ada");
}

/// The handler's event, on the app's stderr.
const HELLO_EVENT: &str = "client introduced itself";

/// Waits until the handler's event appears on the tool's stderr after `mark`: the patched
/// handler's span and event reach the subscriber.
fn the_event_is_logged_after(depot: &Depot, mark: usize) {
    wait_for_text(|| depot.run.stderr_text(), mark, HELLO_EVENT);
}

/// Under `watch`, five saves of the traced `HELLO` handler (`#[hot]` written above
/// `#[tracing::instrument]`) are each patched into the one running server: the new reply on the
/// connection opened before the first save, the keys and the session kept, the subscriber's
/// connection still receiving, and never a restart.
#[test]
fn six_saves_of_a_handler_reach_the_depot_under_watch_keeping_state_and_connections() {
    let mut fixture = Fixture::depot(locations!(), Profile::Dev);
    let depot = Depot::start(&mut fixture, "watch");
    wait_for_text(|| depot.run.stderr_text(), 0, "Watching");
    let pid = depot.run.pid.expect("the depot's pid");
    let mut client = Client::open(&depot.address);
    assert_eq!(client.ask("HELLO ada"), "$hello ada");
    assert_eq!(client.ask("SET kept yes"), "+OK");
    let mut subscriber = Client::open(&depot.address);
    assert_eq!(subscriber.ask("SUBSCRIBE news"), ":1");
    // Watch compiles the base's functions first; it then waits with compilers for the next save.
    wait_until_watch_waits_for_a_save(&depot);

    let mut previous = "hello".to_owned();
    let mut visits = 0;
    for save in 1..=5 {
        let greeting = format!("welcome{save}");
        let mark = depot.run.stderr_text().len();
        fixture.edit(
            HELLO_HANDLER,
            &format!("format!(\"{previous} {{client}}\")"),
            &format!("format!(\"{greeting} {{client}}\")"),
        );
        ask_until(
            &mut client,
            "HELLO ada",
            &format!("${greeting} ada"),
            WATCH_PATCHES,
            || depot.run.stderr_tail(),
        );
        let said = wait_for_text(|| depot.run.stderr_text(), mark, "Patched");
        assert!(
            !said.contains("restart"),
            "save {save} was patched, not restarted:\n{said}"
        );
        the_event_is_logged_after(&depot, mark);
        // The state and the connections the server had before the save.
        assert_eq!(client.ask("GET kept"), "$yes", "save {save}");
        visits += save;
        assert_eq!(
            client.ask(&format!("INCRBY visits {save}")),
            format!(":{visits}")
        );
        let whoami = client.ask("WHOAMI");
        assert!(
            whoami.contains("\"client\":\"ada\""),
            "the session kept its name after save {save}: {whoami}"
        );
        assert_eq!(client.ask(&format!("PUBLISH news save{save}")), ":1");
        assert_eq!(subscriber.line(), format!(">news save{save}"));
        previous = greeting;
    }
    a_new_helper_lists_only_what_calls_it(&fixture, &depot, &mut client, &previous);
    assert_eq!(
        hello(&fixture.socket()).expect("the depot answers on its control socket"),
        pid,
        "the same process served all six saves"
    );
    let said = depot.run.stderr_text();
    assert_eq!(
        said.matches("Patched").count(),
        6,
        "one patch per save:\n{said}"
    );
}

/// A private helper added above the handler (every line below it moves) and called from it:
/// watch lists the handler and the helper, not what only moved (`close`, further down) nor the
/// untouched closures of other modules.
fn a_new_helper_lists_only_what_calls_it(
    fixture: &Fixture,
    depot: &Depot,
    client: &mut Client,
    previous: &str,
) {
    let mark = depot.run.stderr_text().len();
    fixture.edit_all(
        HELLO_HANDLER,
        &[
            (
                "/// Answers a connection command.\n",
                "/// The greeting a client gets.\nfn greeting(client: &str) -> String {\n    format!(\"welcome6 {client}\")\n}\n\n/// Answers a connection command.\n",
            ),
            (
                &format!("format!(\"{previous} {{client}}\")"),
                "greeting(client)",
            ),
        ],
    );
    ask_until(client, "HELLO ada", "$welcome6 ada", WATCH_PATCHES, || {
        depot.run.stderr_tail()
    });
    let said = wait_for_text(|| depot.run.stderr_text(), mark, "(new or inlined: ");
    let changed: Vec<&str> = said
        .lines()
        .filter(|line| line.trim_start().starts_with("Changed "))
        .collect();
    let listed = changed.join("\n");
    assert!(
        listed.contains("depot::handlers::session::handle (hot")
            && listed.contains("depot::handlers::session::greeting"),
        "the handler and its new helper are listed:\n{said}"
    );
    assert!(
        !listed.contains("close") && !listed.contains("forward"),
        "what only moved, or was not touched, is not listed:\n{said}"
    );
}

/// Waits until watch has started compilers that wait for the next save (see
/// `RunningApp::wait_until_watch_is_ready`).
fn wait_until_watch_waits_for_a_save(depot: &Depot) {
    let deadline = std::time::Instant::now() + WATCH_PATCHES;
    while !children_of(depot.run.tool.id())
        .into_iter()
        .any(waits_for_arguments)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "watch started no compiler for the next save\n{}",
            depot.run.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The depot built by `run --release` with full debug information (`debug = true`, whose DWARF
/// refers to types across units): a body-only edit of the traced `HELLO` handler, built with
/// `build --base` against the recorded release base, applies with the client connected and its
/// key kept; a real layout change (a field added to `Job`, which the queues hold) is refused,
/// naming the type, and the server keeps serving.
#[test]
fn the_release_depot_with_debug_info_patches_a_body_and_refuses_a_layout_change() {
    let mut fixture = Fixture::depot(locations!(), Profile::Release);
    let depot = Depot::start(&mut fixture, "run");
    let mut client = Client::open(&depot.address);
    assert_eq!(client.ask("HELLO ada"), "$hello ada");
    assert_eq!(client.ask("SET kept yes"), "+OK");
    assert_eq!(client.ask("PUSH mail \"to bob\""), ":1");

    let base = fixture.target().join("hotpatch/release/base");
    fixture.edit(HELLO_HANDLER, HELLO_V1, HELLO_V2);
    let mark = depot.run.stderr_text().len();
    let (patch, built) = fixture.build_with("hello.hotpatch", &["--base", base.to_str().unwrap()]);
    let built = built.success();
    assert!(
        !built.stderr.contains("layout"),
        "a body-only edit is no layout change: {}",
        built.describe()
    );
    fixture.apply(&patch).success();
    assert_eq!(client.ask("HELLO ada"), "$welcome ada");
    the_event_is_logged_after(&depot, mark);
    assert_eq!(client.ask("GET kept"), "$yes");

    let edits = [
        (
            "    pub last_error: Option<String>,\n}",
            "    pub last_error: Option<String>,\n    pub retried: u8,\n}",
        ),
        (
            "            last_error: None,\n",
            "            last_error: None,\n            retried: 0,\n",
        ),
    ];
    fixture.edit_all("depot/src/queue/job.rs", &edits);
    fixture
        .build_refused("layout.hotpatch", "layout-changed")
        .stderr_names(&["depot::queue::job::Job", "layout", "restart"]);
    assert_eq!(client.ask("HELLO ada"), "$welcome ada");
    let queue = client.ask("QSTATS mail");
    assert!(
        queue.contains("\"pushed\":1"),
        "the queue kept its job: {queue}"
    );
}
