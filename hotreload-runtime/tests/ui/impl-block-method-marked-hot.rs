use hotreload_runtime::hot;

struct Key {
    name: String,
}

#[hot]
impl Key {
    #[hot]
    fn new(name: impl ToString) -> Self {
        Key {
            name: name.to_string(),
        }
    }

    fn len(&self) -> usize {
        self.name.len()
    }
}

fn main() {
    let _ = Key::new(1).len();
}
