use hotreload_runtime::hot;

#[hot]
fn total(values: &[u32]) -> u32
where
    u32: Copy,
{
    values.iter().sum()
}

fn main() {}
