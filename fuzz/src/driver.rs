//! A fuzzing driver on the stable toolchain: it runs a target on every committed input (the seed
//! corpus and the regressions), then on mutations of them for a time budget. It is guided by
//! outcomes, not coverage: a mutant that reaches a kind of outcome not seen before joins the
//! corpus. Runs are reproducible: the seed is printed and can be given back.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mutate::{mutate, Rng};
use crate::targets::Target;

/// Mutants kept in memory besides the committed inputs.
const MAX_CORPUS: usize = 512;
/// An input larger than this is cut: the formats' size caps are tested by their own tests.
const MAX_INPUT: usize = 64 << 10;
/// One execution slower than this is a finding (a loop that depends on the input).
const SLOW_EXECUTION: Duration = Duration::from_secs(2);

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Mutants run (the committed inputs not counted).
    pub executions: u64,
    /// Inputs in the corpus at the end: committed ones and mutants kept.
    pub corpus: usize,
    /// Kinds of outcome reached.
    pub outcomes: usize,
}

/// The directory of a target's committed inputs of one kind (`corpus` or `regressions`).
pub fn inputs_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target)
}

fn read_inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("listing a corpus").path();
            let bytes = std::fs::read(&path).expect("reading a corpus input");
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Runs `target` on its committed inputs, then on mutants for `budget`, with `seed`. Panics (the
/// test fails) at the first input that makes the target panic or run slowly, after saving it in
/// the scratch directory and naming it.
pub fn run(name: &str, target: Target, budget: Duration, seed: u64) -> RunReport {
    let committed: Vec<(String, Vec<u8>)> = ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| read_inputs(&inputs_dir(kind, name)))
        .collect();
    assert!(
        !committed.is_empty(),
        "no seed inputs in {}",
        inputs_dir("corpus", name).display()
    );
    let mut outcomes = std::collections::HashSet::new();
    for (path, input) in &committed {
        outcomes.insert(execute(
            name,
            target,
            input,
            &format!("committed input {path}"),
        ));
    }
    let mut corpus: Vec<Vec<u8>> = committed.into_iter().map(|(_, bytes)| bytes).collect();
    let seeds = corpus.len();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut executions = 0;
    while started.elapsed() < budget {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut input, &corpus, &mut rng);
        input.truncate(MAX_INPUT);
        let context = format!("a mutant (seed {seed}, execution {executions})");
        let outcome = execute(name, target, &input, &context);
        executions += 1;
        if outcomes.insert(outcome) && corpus.len() < seeds + MAX_CORPUS {
            corpus.push(input);
        }
    }
    RunReport {
        executions,
        corpus: corpus.len(),
        outcomes: outcomes.len(),
    }
}

fn execute(name: &str, target: Target, input: &[u8], context: &str) -> String {
    let started = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = started.elapsed();
    match result {
        Ok(outcome) if took <= SLOW_EXECUTION => outcome,
        Ok(_) => finding(name, input, context, &format!("took {took:?}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            finding(name, input, context, &format!("panicked: {message}"))
        }
    }
}

fn finding(name: &str, input: &[u8], context: &str, what: &str) -> ! {
    let dir = std::env::temp_dir()
        .join("hotreload-fuzz-findings")
        .join(name);
    std::fs::create_dir_all(&dir).expect("creating the findings directory");
    let file = dir.join(&hotreload_runtime::wire::patch_file::sha256_hex(input)[..16]);
    std::fs::write(&file, input).expect("saving a finding");
    panic!(
        "fuzz target `{name}` {what} on {context}, saved as {}; fix the parser, then copy the \
         file into {} so it stays a regression test",
        file.display(),
        inputs_dir("regressions", name).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics_on_boom(data: &[u8]) -> String {
        assert!(!data.windows(4).any(|w| w == b"BOOM"), "found BOOM");
        String::new()
    }

    /// A target that panics fails the run, naming the target, the panic and the saved input.
    #[test]
    fn a_panicking_input_is_a_finding_saved_for_a_regression_test() {
        let payload = panic::catch_unwind(|| {
            execute("selftest", panics_on_boom, b"xxBOOMxx", "a hand-made input")
        })
        .unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(message.contains("`selftest` panicked: found BOOM on a hand-made input"));
        let saved = message
            .split("saved as ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), b"xxBOOMxx");
        assert!(message.contains("regressions/selftest"), "{message}");
    }
}
