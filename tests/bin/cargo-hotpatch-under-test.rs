//! The `cargo-hotpatch` tool as the end-to-end tests and benchmarks run it: the same library
//! entry point as the tool's own `main.rs`. The tool names itself by `current_exe()` (it is its
//! own `RUSTC_WORKSPACE_WRAPPER`) and parses its command line with clap's `bin_name = "cargo"`,
//! so this binary's name changes nothing it does.

fn main() {
    std::process::exit(cargo_hotpatch::main());
}
