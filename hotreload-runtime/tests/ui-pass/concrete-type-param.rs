//! Twin of `ui/generic-type-param.rs` and `ui/const-param.rs`: the same function on a concrete type.

use hotreload_runtime::hot;

#[hot]
fn largest(items: &[u32]) -> u32 {
    let mut largest = items[0];
    for &item in items {
        if item > largest {
            largest = item;
        }
    }
    largest
}

#[hot]
fn sum(values: [u32; 4]) -> u32 {
    values.iter().sum()
}

fn main() {
    assert_eq!(largest(&[3, 9, 2]), 9);
    assert_eq!(sum([1, 2, 3, 4]), 10);
}
