//! The exit codes a command line alone decides: an unparsable one exits with 2, and `--help`
//! lists the documented codes. The codes that need a running app are checked where one runs:
//! 3 (needs-restart, with each refusal kind) in `patch.rs`, `gateway.rs` and `release.rs`;
//! 5 (a target refused) in `rollout.rs` and `patch.rs`; 6 (rolled back) in `rollout.rs`; and a
//! closed stdout ending quietly with 0 in `patch.rs`.

use std::process::Command;

use hotreload_tests::{locations, ToolOutput};

/// `cargo-hotpatch hotpatch ARGS` (the tool under test), run to completion.
fn tool(args: &[&str]) -> ToolOutput {
    let output = Command::new(locations!().tool)
        .arg("hotpatch")
        .args(args)
        .output()
        .expect("running cargo-hotpatch");
    ToolOutput::new(args, output)
}

#[test]
fn an_unparsable_command_line_exits_with_2() {
    tool(&["--no-such-flag"]).exit_code(2);
}

#[test]
fn help_lists_the_exit_codes() {
    let help = tool(&["--help"]).exit_code(0);
    for line in [
        "Exit codes:",
        "3  the change cannot be patched",
        "5  a target refused the patch",
        "6  a rollout failed and every target it patched was rolled back",
    ] {
        assert!(
            help.stdout.contains(line),
            "`{line}` missing from --help: {}",
            help.describe()
        );
    }
}
