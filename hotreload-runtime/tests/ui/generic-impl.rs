use hotreload_runtime::hot;

struct Wrapper<T> {
    value: T,
}

#[hot]
impl<T: Clone> Wrapper<T> {
    fn get(&self) -> T {
        self.value.clone()
    }
}

fn main() {
    let _ = Wrapper { value: 1 }.get();
}
