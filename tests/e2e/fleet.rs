//! End to end: a fleet through a real etcd. Five gateways of one build behind three agents (and
//! one gateway of another build), clients connected to each throughout: signed patches published
//! in batches with no request failing; a process started later comes up patched; a patch that
//! does not verify, a failing health command and a process that dies each roll the publish back;
//! two publishes at once (one is told); a fleet rollback; an agent killed and restarted; etcd
//! stopped and restarted in the middle of a rollout. One fleet serves every step.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotreload_tests::etcd::Etcd;
use hotreload_tests::fleet::FleetAgent;
use hotreload_tests::{
    collect_output, locations, read_lines, Fixture, PatchFile, Profile, StatusReport, ToolOutput,
};

use crate::gateway::{
    listening_address, start_client, stop_clients, two_keys, wait_until_all_see, Client,
    Connection, Gateway, Instance, V2,
};

const SERVICE: &str = "gateway";
const REPORTS: &str = "/hotreload/gateway/reports/";

/// The etcd server, the gateways and their agents.
struct Fleet<'a> {
    fixture: &'a Fixture,
    etcd: Etcd,
    instances: Vec<Instance>,
    agents: Vec<FleetAgent>,
}

impl Fleet<'_> {
    /// `publish ARGS --etcd URL --service gateway`, not yet started.
    fn publish_command(&self, args: &[&str]) -> Command {
        let url = self.etcd.url();
        let mut all = vec!["publish"];
        all.extend(args);
        all.extend(["--etcd", &url, "--service", SERVICE]);
        if !args.contains(&"--timeout") {
            all.extend(["--timeout", "60"]);
        }
        self.fixture.tool_command(&all)
    }

    fn publish(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .publish_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch publish");
        ToolOutput::new(args, output)
    }

    /// Waits until `count` processes report.
    fn wait_for_reports(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.etcd.count(REPORTS) != count {
            assert!(
                Instant::now() < deadline,
                "{} processes report, not {count}; agents said:\n{}",
                self.etcd.count(REPORTS),
                self.agents_said()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn agents_said(&self) -> String {
        self.agents
            .iter()
            .map(|a| format!("--- agent {}:\n{}", a.host, a.stderr_text()))
            .collect()
    }
}

/// A gateway of another build: a copy of the binary whose GNU build id differs by one byte.
struct OtherBuild {
    child: Child,
    address: String,
    socket: PathBuf,
}

impl OtherBuild {
    fn start(fixture: &Fixture, trusted: &str) -> Self {
        let binary = fixture.root().join("gateway-other-build");
        let mut bytes = std::fs::read(fixture.target().join("debug").join("gateway")).unwrap();
        let (offset, size) = {
            use object::{Object as _, ObjectSection as _};
            let file = object::File::parse(&*bytes).unwrap();
            let note = file.section_by_name(".note.gnu.build-id").unwrap();
            note.file_range().unwrap()
        };
        bytes[(offset + size - 1) as usize] ^= 0xff;
        std::fs::write(&binary, bytes).unwrap();
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let socket = fixture.root().join("gw-other.sock");
        let mut child = Command::new(&binary)
            .env("GATEWAY_ADDR", "127.0.0.1:0")
            .env("HOTRELOAD_CONTROL_SOCKET", &socket)
            .env("HOTRELOAD_TRUSTED_KEYS", trusted)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = read_lines(child.stdout.take().unwrap());
        let address = listening_address(&lines, Duration::from_secs(30), String::new);
        OtherBuild {
            child,
            address,
            socket,
        }
    }
}

impl Drop for OtherBuild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_fleet_takes_patches_through_etcd_in_batches_and_rolls_back() {
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    // `run` builds the host and records the base; the instances run that same binary.
    drop(Gateway::start(&fixture));
    let (key, trusted, _) = two_keys(&fixture);
    let etcd = Etcd::start();
    let instances: Vec<Instance> = (1..=5)
        .map(|n| Instance::start(&fixture, &format!("gw-{n}"), &trusted))
        .collect();
    let other = OtherBuild::start(&fixture, &trusted);
    // The third agent also serves every socket in this directory: none yet.
    let late_sockets = fixture.root().join("late");
    std::fs::create_dir(&late_sockets).unwrap();
    let socket = |i: usize| instances[i].socket.clone();
    let url = etcd.url();
    let agents = vec![
        FleetAgent::start(&fixture, &url, SERVICE, "host-a", &[socket(0), socket(1)]),
        FleetAgent::start(&fixture, &url, SERVICE, "host-b", &[socket(2), socket(3)]),
        FleetAgent::start(
            &fixture,
            &url,
            SERVICE,
            "host-c",
            &[socket(4), other.socket.clone(), late_sockets],
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..10)
        .map(|i| start_client(instances[i % 5].address.clone(), i, Arc::clone(&stop)))
        .collect();
    let other_client = start_client(other.address.clone(), 10, Arc::clone(&stop));
    wait_until_all_see(&clients, "v1");
    let mut fleet = Fleet {
        fixture: &fixture,
        etcd,
        instances,
        agents,
    };
    fleet.wait_for_reports(6);

    let (v2, v3) = signed_patches(&fixture, &key);
    a_signed_patch_goes_out_in_batches(&fleet, &v2, &clients, &other_client);
    a_process_started_later_comes_up_patched(&mut fleet, &trusted);
    a_process_killed_in_the_middle_of_an_apply(&fleet, &trusted);
    a_patch_that_does_not_verify_rolls_the_batch_back(&fleet, &v3, &clients);
    a_failing_health_command_rolls_the_batch_back(&fleet, &v3, &clients);
    of_two_publishes_at_once_one_wins_and_the_other_is_told(&fleet, &v3, &clients);
    a_fleet_rollback_returns_every_process(&fleet, &clients);
    an_agent_killed_and_restarted_catches_up(&mut fleet, &v3, &clients);
    etcd_stopped_and_restarted_mid_rollout(&mut fleet, &v2, &clients);
    a_process_that_dies_mid_rollout_rolls_it_back(&fleet, &v3, &clients);
    a_patch_altered_in_etcd_is_refused_by_the_agent(&fleet, &v3, &clients);
    etcd_gone_past_the_timeout_stops_the_publish(&mut fleet, &v3, &clients);

    assert_eq!(
        *other_client.version.lock().unwrap(),
        "v1",
        "the other build is left alone"
    );
    stop_clients(&stop, clients);
    stop_clients(&stop, vec![other_client]);
}

/// v2 (the session layout change) and v3 (v2 answering `ok v3`), signed by the trusted key.
fn signed_patches(fixture: &Fixture, key: &Path) -> (PathBuf, PathBuf) {
    let sign = ["--sign", key.to_str().unwrap()];
    fixture.replace_file("gateway/src/lib.rs", V2);
    let (v2, built) = fixture.build_with("v2.hotpatch", &sign);
    built.success();
    fixture.replace_file("gateway/src/lib.rs", &V2.replace("ok v2", "ok v3"));
    let (v3, built) = fixture.build_with("v3.hotpatch", &sign);
    built.success();
    (v2, v3)
}

/// Seconds in a status line `VERB ... in T s`.
fn seconds_in(output: &ToolOutput, verb: &str) -> f64 {
    let line = output
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with(verb) && l.ends_with(" s"))
        .unwrap_or_else(|| panic!("no `{verb} ... in T s` line: {}", output.describe()));
    let words: Vec<&str> = line.split_whitespace().collect();
    words[words.len() - 2].parse().unwrap()
}

fn a_signed_patch_goes_out_in_batches(
    fleet: &Fleet,
    v2: &Path,
    clients: &[Client],
    other_client: &Client,
) {
    let health_log = fleet.fixture.root().join("health.log");
    let health = format!("echo \"$HOTPATCH_PROCESSES\" >> {}", health_log.display());
    let args = ["--batches", "1,40%,100%", "--health", &health];
    let mut command = fleet.publish_command(&[&[v2.to_str().unwrap()][..], &args].concat());
    // Stored in chunks of 64 KiB: reassembled and checked by every agent.
    command.env("HOTPATCH_FLEET_CHUNK_BYTES", "65536");
    let started = Instant::now();
    let published = ToolOutput::new(&args, command.output().unwrap()).success();
    let command_took = started.elapsed();
    let runs = std::fs::read_to_string(&health_log).unwrap();
    let sizes: Vec<usize> = runs.lines().map(|l| l.split(',').count()).collect();
    assert_eq!(sizes, [1, 2, 5], "one health check per batch: {runs}");
    assert!(
        published.stdout.contains("other build") && published.stdout.contains("applied"),
        "the table lists the processes patched and the one of another build: {}",
        published.describe()
    );
    let size = std::fs::metadata(v2).unwrap().len() as usize;
    assert_eq!(
        fleet.etcd.count("/hotreload/gateway/blobs/"),
        size.div_ceil(65536) + 1,
        "the patch's chunks and their meta record"
    );
    wait_until_all_see(clients, "v2");
    assert_eq!(*other_client.version.lock().unwrap(), "v1");
    eprintln!(
        "fleet: publish to the last of 5 processes patched: {:.2} s (the whole command: {:.2} s)",
        seconds_in(&published, "Published"),
        command_took.as_secs_f64()
    );
}

/// A gateway started only now in the third agent's socket directory: it is brought to v2.
fn a_process_started_later_comes_up_patched(fleet: &mut Fleet, trusted: &str) {
    let late = Instance::start(fleet.fixture, "late/gw-late", trusted);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut connection = Connection::open(&late.address);
        if connection.ask("login late").unwrap() == "ok v2 hello late" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gw-late never ran v2:\n{}",
            fleet.agents_said()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet.instances.push(late);
    fleet.wait_for_reports(7);
}

/// A gateway on v1 whose session is held by a slow request moves into the third agent's socket
/// directory: the agent's apply of v2 waits at the commit for that session, and the process is
/// killed then. The agent learns at once that it is gone (not after the commit deadline twice
/// over), removes its report and goes on serving the others.
fn a_process_killed_in_the_middle_of_an_apply(fleet: &Fleet, trusted: &str) {
    let mut slow = Instance::start(fleet.fixture, "gw-slow", trusted);
    let mut connection = Connection::open(&slow.address);
    assert_eq!(
        connection.ask("login slowpoke").unwrap(),
        "ok v1 hello slowpoke"
    );
    let in_flight = std::thread::spawn(move || connection.ask("slow 4000"));
    std::thread::sleep(Duration::from_millis(200));
    let served = fleet.fixture.root().join("late").join("gw-slow.sock");
    std::fs::rename(&slow.socket, &served).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = fleet.fixture.tool(&[
            "status",
            "--message-format",
            "json",
            "--target",
            served.to_str().unwrap(),
        ]);
        let applying = serde_json::from_str::<StatusReport>(status.stdout.trim())
            .is_ok_and(|status| status.applying.is_some());
        if applying {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never applied v2 to gw-slow:\n{}",
            fleet.agents_said()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Instant::now();
    slow.child.kill().unwrap();
    let _ = slow.child.wait();
    assert!(
        in_flight.join().unwrap().is_err(),
        "the slow request died with its process"
    );
    while !fleet.agents[2]
        .stderr_text()
        .contains("the process exited before answering `apply`")
    {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the agent did not learn that gw-slow is gone:\n{}",
            fleet.agents_said()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.wait_for_reports(7);
}

fn a_patch_that_does_not_verify_rolls_the_batch_back(fleet: &Fleet, v3: &Path, clients: &[Client]) {
    let parsed = PatchFile::parse(&std::fs::read(v3).unwrap()).unwrap();
    let mut unsigned = parsed.clone();
    unsigned.signature = None;
    let path = v3.with_file_name("v3-unsigned.hotpatch");
    std::fs::write(&path, unsigned.to_bytes()).unwrap();
    let refused = fleet
        .publish(&[path.to_str().unwrap(), "--batches", "1,100%"])
        .exit_code(6);
    assert!(
        refused.stdout.contains("refused") && refused.stdout.contains("not signed"),
        "the process refused it, saying why: {}",
        refused.describe()
    );
    assert!(
        refused.stdout.contains("untouched"),
        "{}",
        refused.describe()
    );
    wait_until_all_see(clients, "v2");
}

fn a_failing_health_command_rolls_the_batch_back(fleet: &Fleet, v3: &Path, clients: &[Client]) {
    let failed = fleet
        .publish(&[
            v3.to_str().unwrap(),
            "--batches",
            "1,100%",
            "--health",
            "exit 1",
        ])
        .exit_code(6);
    assert!(
        failed.stdout.contains("rolled back") && failed.stdout.contains("untouched"),
        "{}",
        failed.describe()
    );
    wait_until_all_see(clients, "v2");
    eprintln!(
        "fleet: rolling the first batch back: {:.2} s",
        seconds_in(&failed, "Rolled back")
    );
}

fn of_two_publishes_at_once_one_wins_and_the_other_is_told(
    fleet: &Fleet,
    v3: &Path,
    clients: &[Client],
) {
    let args = [
        v3.to_str().unwrap(),
        "--batches",
        "1,100%",
        "--health",
        "sleep 2",
    ];
    let start = || {
        let mut child = fleet
            .publish_command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = collect_output(child.stderr.take().unwrap());
        (child, stderr)
    };
    let (mut first, first_said) = start();
    let (mut second, second_said) = start();
    let codes = [first.wait().unwrap().code(), second.wait().unwrap().code()];
    let said = format!(
        "first:\n{}\nsecond:\n{}",
        first_said.lock().unwrap(),
        second_said.lock().unwrap()
    );
    let mut sorted = codes;
    sorted.sort();
    assert_eq!(sorted, [Some(0), Some(1)], "one wins, one fails: {said}");
    assert!(
        said.contains("another publish of service `gateway` is under way"),
        "the loser is told: {said}"
    );
    wait_until_all_see(clients, "v3");
}

fn a_fleet_rollback_returns_every_process(fleet: &Fleet, clients: &[Client]) {
    let started = Instant::now();
    let rolled = fleet
        .publish(&["--rollback", "--message-format", "json"])
        .success();
    let command_took = started.elapsed();
    // In JSON, one record per process on stdout and the summary on stderr, as `apply` prints.
    let records: Vec<serde_json::Value> = rolled
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let back = records
        .iter()
        .filter(|r| r["reason"] == "fleet-process" && r["result"] == "rolled back")
        .count();
    assert_eq!(back, 6, "{}", rolled.describe());
    assert!(
        rolled.stderr.contains("\"reason\":\"rollout-summary\""),
        "{}",
        rolled.describe()
    );
    wait_until_all_see(clients, "v2");
    eprintln!(
        "fleet: publish --rollback of 6 processes: {:.2} s (the whole command: {:.2} s)",
        seconds_in(&rolled, "Rolled back"),
        command_took.as_secs_f64()
    );
    fleet
        .publish(&["--rollback"])
        .failure()
        .stderr_names(&["rolled back already"]);
}

/// The second agent dies: its processes' reports go with its lease, and the publish moves the
/// others; restarted, it brings its own to the published patch.
fn an_agent_killed_and_restarted_catches_up(fleet: &mut Fleet, v3: &Path, clients: &[Client]) {
    fleet.agents[1].kill();
    fleet.wait_for_reports(5);
    let published = fleet.publish(&[v3.to_str().unwrap()]).success();
    assert!(
        published.stdout.contains("applied"),
        "{}",
        published.describe()
    );
    // Clients 2, 3, 7 and 8 talk to the dead agent's gateways, which still run v2.
    let (theirs, ours): (Vec<&Client>, Vec<&Client>) = split(clients, |i| matches!(i % 5, 2 | 3));
    wait_until_these_see(&ours, "v3");
    assert!(theirs.iter().all(|c| *c.version.lock().unwrap() == "v2"));
    fleet.agents[1].restart(fleet.fixture);
    wait_until_all_see(clients, "v3");
    fleet.wait_for_reports(7);
}

/// A publish running in the background, with what it printed so far.
struct Background {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    fn start(fleet: &Fleet, args: &[&str]) -> Self {
        let mut child = fleet
            .publish_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect_output(child.stdout.take().unwrap());
        let stderr = collect_output(child.stderr.take().unwrap());
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits until its first health command started.
    fn wait_for_health(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr.lock().unwrap().contains("Health") {
            assert!(
                Instant::now() < deadline,
                "no health check: {}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for it to end; whether it succeeded, and everything it printed.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        (status, self.said())
    }

    fn said(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }
}

/// etcd goes away after the first batch's health command started and comes back 4 s later: the
/// gateways keep serving, the publish waits, the agents reconnect, and the rollout finishes.
fn etcd_stopped_and_restarted_mid_rollout(fleet: &mut Fleet, v2: &Path, clients: &[Client]) {
    let args = [
        v2.to_str().unwrap(),
        "--batches",
        "1,100%",
        "--health",
        "sleep 2",
    ];
    let publish = Background::start(fleet, &args);
    publish.wait_for_health();
    fleet.etcd.stop();
    std::thread::sleep(Duration::from_secs(4));
    fleet.etcd.restart();
    let (status, said) = publish.finish();
    assert!(
        status.success(),
        "the publish finished once etcd was back: {said}"
    );
    assert!(
        said.contains("Waiting"),
        "it said it waited for etcd: {said}"
    );
    wait_until_all_see(clients, "v2");
    fleet.wait_for_reports(7);
}

/// gw-late is killed by the first batch's health command: the second batch sees it disappear,
/// and the publish returns the first batch.
fn a_process_that_dies_mid_rollout_rolls_it_back(fleet: &Fleet, v3: &Path, clients: &[Client]) {
    let late = fleet.instances.last().unwrap();
    let kill = format!("kill -9 {}", late.child.id());
    let died = fleet
        .publish(&[
            v3.to_str().unwrap(),
            "--batches",
            "1,100%",
            "--health",
            &kill,
        ])
        .exit_code(6);
    assert!(
        died.stdout.contains("DISAPPEARED") && died.stdout.contains("rolled back"),
        "{}",
        died.describe()
    );
    wait_until_all_see(clients, "v2");
}

/// The clients whose index `pick` chooses, and the others.
fn split(clients: &[Client], pick: impl Fn(usize) -> bool) -> (Vec<&Client>, Vec<&Client>) {
    let (picked, others): (Vec<_>, Vec<_>) =
        clients.iter().enumerate().partition(|(i, _)| pick(*i));
    (
        picked.into_iter().map(|(_, c)| c).collect(),
        others.into_iter().map(|(_, c)| c).collect(),
    )
}

/// Waits until every one of `clients` saw `version`.
fn wait_until_these_see(clients: &[&Client], version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients
        .iter()
        .all(|c| *c.version.lock().unwrap() == version)
    {
        assert!(
            Instant::now() < deadline,
            "not every client saw {version} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Someone with write access to etcd alters the stored v3 after the first batch took it: the
/// other agents refuse the reassembled bytes (their hash is not the blob's name), the batch
/// fails and the publish is rolled back.
fn a_patch_altered_in_etcd_is_refused_by_the_agent(fleet: &Fleet, v3: &Path, clients: &[Client]) {
    for host in ["host-a", "host-b", "host-c"] {
        let _ = std::fs::remove_dir_all(fleet.fixture.root().join(format!("agent-cache-{host}")));
    }
    let sum = Command::new("sha256sum").arg(v3).output().unwrap();
    let sha256 = String::from_utf8(sum.stdout).unwrap();
    let sha256 = sha256.split_whitespace().next().unwrap().to_owned();
    let mut bytes = std::fs::read(v3).unwrap();
    assert!(bytes.len() < 1024 * 1024, "v3 is stored as one chunk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let args = [
        v3.to_str().unwrap(),
        "--batches",
        "1,100%",
        "--health",
        "sleep 2",
    ];
    let publish = Background::start(fleet, &args);
    publish.wait_for_health();
    fleet
        .etcd
        .put(&format!("/hotreload/gateway/blobs/{sha256}/0"), &bytes);
    let (status, said) = publish.finish();
    assert_eq!(status.code(), Some(6), "{said}");
    assert!(said.contains("damaged or was altered"), "{said}");
    wait_until_all_see(clients, "v2");
}

/// etcd goes away after the first batch and stays away past `--timeout`: the publish stops with
/// exit code 1 and says what to do; the gateways keep serving (the first on v3, the others on
/// v2); with etcd back, `publish --rollback` returns the first. The publish also re-stores v3,
/// whose copy in etcd the previous step damaged.
fn etcd_gone_past_the_timeout_stops_the_publish(fleet: &mut Fleet, v3: &Path, clients: &[Client]) {
    let args = [
        v3.to_str().unwrap(),
        "--batches",
        "1,100%",
        "--health",
        "sleep 2",
        "--timeout",
        "3",
    ];
    let publish = Background::start(fleet, &args);
    publish.wait_for_health();
    fleet.etcd.stop();
    let (status, said) = publish.finish();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains("unreachable") && said.contains("run `publish --rollback` when etcd is back"),
        "{said}"
    );
    fleet.etcd.restart();
    // The stopped publish could not release its lock: it goes with its lease (10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rolled = fleet.publish(&["--rollback"]);
        if rolled.succeeded() {
            break;
        }
        assert!(
            rolled.stderr.contains("is under way") && Instant::now() < deadline,
            "{}",
            rolled.describe()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until_all_see(clients, "v2");
    // gw-late was killed two steps ago: the five, and the other build.
    fleet.wait_for_reports(6);
}
