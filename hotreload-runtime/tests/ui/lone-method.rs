use hotreload_runtime::hot;

struct Counter {
    count: u32,
}

impl Counter {
    #[hot]
    fn bump(&mut self) -> u32 {
        self.count += 1;
        self.count
    }
}

fn main() {
    let mut counter = Counter { count: 0 };
    counter.bump();
}
