use hotreload_runtime::hot;

#[hot]
struct Config {
    retries: u32,
}

fn main() {
    let _ = Config { retries: 3 }.retries;
}
