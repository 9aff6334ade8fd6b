use hotreload_runtime::hot;

#[hot]
const fn double(x: u32) -> u32 {
    x * 2
}

fn main() {}
