use hotreload_runtime::hot;

struct Key;

#[hot]
impl Key {
    const ANSWER: u32 = 42;
}

fn main() {
    let _ = Key::ANSWER;
}
