use hotreload_runtime::hot;

#[hot(?Send)]
fn fee(qty: u64, price: u64) -> u64 {
    qty * price / 1000
}

fn main() {}
