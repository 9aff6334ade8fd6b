//! Each fuzz target for a few seconds (`HOTRELOAD_FUZZ_SECS`, default 3) over its committed
//! inputs and their mutants: what CI runs. The longer run is the same with more seconds, e.g.
//! `HOTRELOAD_FUZZ_SECS=600 cargo test --release -p hotreload-fuzz -- --nocapture`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotreload_fuzz::{driver, targets};

const DEFAULT_SECS: f64 = 3.0;

fn budget() -> Duration {
    match std::env::var("HOTRELOAD_FUZZ_SECS") {
        Ok(text) => {
            Duration::from_secs_f64(text.parse().unwrap_or_else(|_| {
                panic!("HOTRELOAD_FUZZ_SECS={text} is not a number of seconds")
            }))
        }
        Err(_) => Duration::from_secs_f64(DEFAULT_SECS),
    }
}

/// `HOTRELOAD_FUZZ_SEED` to replay a run; otherwise a new one each run (printed).
fn seed() -> u64 {
    match std::env::var("HOTRELOAD_FUZZ_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("HOTRELOAD_FUZZ_SEED={text} is not a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

fn fuzz(name: &str) {
    let target = targets::ALL
        .iter()
        .find(|(known, _)| *known == name)
        .unwrap_or_else(|| panic!("no fuzz target `{name}`"))
        .1;
    let seed = seed();
    let report = driver::run(name, target, budget(), seed);
    eprintln!("fuzz {name}: seed {seed}: {report:?}");
    assert!(report.executions > 0, "{name} ran no mutant");
}

#[test]
fn fuzz_patch_file() {
    fuzz("patch_file");
}

#[test]
fn fuzz_manifest() {
    fuzz("manifest");
}

#[test]
fn fuzz_control_protocol() {
    fuzz("control_protocol");
}

#[test]
fn fuzz_control_server() {
    fuzz("control_server");
}

#[test]
fn fuzz_state_records() {
    fuzz("state_records");
}
