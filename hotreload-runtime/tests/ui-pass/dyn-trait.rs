//! Twin of `ui/impl-trait-arg.rs` and `ui/impl-trait-return.rs`: `dyn Trait` instead of
//! `impl Trait`.

use hotreload_runtime::hot;

#[hot]
fn describe(value: &dyn std::fmt::Display) -> String {
    format!("<{value}>")
}

#[hot]
fn evens(limit: u32) -> Box<dyn Iterator<Item = u32>> {
    Box::new((0..limit).filter(|n| n % 2 == 0))
}

fn main() {
    assert_eq!(describe(&7), "<7>");
    assert_eq!(evens(5).count(), 3);
}
