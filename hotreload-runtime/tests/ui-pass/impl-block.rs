//! Twin of `ui/lone-method.rs`, `ui/generic-impl.rs` and `ui/impl-block-empty.rs`: `#[hot]` on a
//! concrete impl block with methods.

use hotreload_runtime::hot;

struct Counter {
    count: u32,
}

#[hot]
impl Counter {
    fn bump(&mut self) -> u32 {
        self.count += 1;
        self.count
    }
}

struct Wrapper<T> {
    value: T,
}

#[hot]
impl Wrapper<u32> {
    fn get(&self) -> u32 {
        self.value
    }
}

fn main() {
    let mut counter = Counter { count: 0 };
    assert_eq!(counter.bump(), 1);
    assert_eq!(Wrapper { value: 1 }.get(), 1);
}
