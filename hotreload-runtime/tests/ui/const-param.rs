use hotreload_runtime::hot;

#[hot]
fn sum<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

fn main() {}
