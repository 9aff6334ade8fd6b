//! Twin of `ui/malformed-argument.rs`: `?Send`, the one accepted argument, on an `async fn`.

use hotreload_runtime::hot;

#[hot(?Send)]
async fn load(id: u32) -> u32 {
    id
}

fn main() {
    let _future = load(1);
}
