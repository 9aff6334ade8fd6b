//! Twin of `ui/const-fn.rs`, `ui/extern-abi.rs`, `ui/where-clause.rs`, `ui/unknown-argument.rs`
//! and `ui/send-on-sync-fn.rs`: the same functions as plain Rust functions under plain `#[hot]`.

use hotreload_runtime::hot;

#[hot]
fn double(x: u32) -> u32 {
    x * 2
}

#[hot]
fn callback(x: i32) -> i32 {
    x + 1
}

#[hot]
fn total(values: &[u32]) -> u32 {
    values.iter().sum()
}

#[hot]
fn fee(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

fn main() {
    assert_eq!(double(2), 4);
    assert_eq!(callback(1), 2);
    assert_eq!(total(&[1, 2]), 3);
    assert_eq!(fee(10, 500), 5);
}
