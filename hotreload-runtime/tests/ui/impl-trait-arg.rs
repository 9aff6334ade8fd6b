use hotreload_runtime::hot;

#[hot]
fn describe(value: impl std::fmt::Display) -> String {
    format!("<{value}>")
}

fn main() {}
