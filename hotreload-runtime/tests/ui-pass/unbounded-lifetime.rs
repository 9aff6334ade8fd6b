//! Twin of `ui/bounded-lifetime.rs`: the same lifetimes without the bound.

use hotreload_runtime::hot;

#[hot]
fn pick<'a, 'b>(a: &'a str, b: &'b str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        "short"
    }
}

fn main() {
    assert_eq!(pick("long", "x"), "long");
}
