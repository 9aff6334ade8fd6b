use hotreload_runtime::hot;

#[hot(?Sync)]
async fn load(id: u32) -> u32 {
    id
}

fn main() {}
