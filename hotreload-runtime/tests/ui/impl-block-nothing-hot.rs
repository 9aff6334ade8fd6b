use hotreload_runtime::hot;

struct Key {
    name: String,
}

#[hot]
impl Key {
    fn new(name: impl ToString) -> Self {
        Key {
            name: name.to_string(),
        }
    }

    const fn answer() -> u32 {
        42
    }
}

fn main() {
    let _ = (Key::new(1).name, Key::answer());
}
