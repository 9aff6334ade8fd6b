fn main() {
    std::process::exit(cargo_hotpatch::main());
}
