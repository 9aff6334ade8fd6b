//! The size of a function of this test executable, from its ELF symbol table: what a patch's
//! manifest gives the runtime for each function it redirects.

/// The `st_size` of the function symbol at `address` (absolute, in this process).
pub fn function_size(address: usize) -> usize {
    let elf = std::fs::read("/proc/self/exe").expect("the test executable is readable");
    let base = load_base();
    let wanted = (address - base) as u64;
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let section_headers = u64_at(0x28) as usize;
    let entry_size = usize::from(u16_at(0x3a));
    for index in 0..usize::from(u16_at(0x3c)) {
        let header = section_headers + index * entry_size;
        // SHT_SYMTAB
        if u32_at(header + 4) != 2 {
            continue;
        }
        let offset = u64_at(header + 0x18) as usize;
        let size = u64_at(header + 0x20) as usize;
        for symbol in (offset..offset + size).step_by(24) {
            // STT_FUNC
            if elf[symbol + 4] & 0xf == 2 && u64_at(symbol + 8) == wanted {
                return u64_at(symbol + 16) as usize;
            }
        }
    }
    panic!("no function symbol at {address:#x} in the test executable");
}

/// Where the executable is mapped: the start of its mapping at file offset 0.
fn load_base() -> usize {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .find(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() >= 6
                && fields[2] == "00000000"
                && std::path::Path::new(fields[5]) == exe.as_path()
        })
        .and_then(|line| usize::from_str_radix(line.split('-').next()?, 16).ok())
        .expect("the executable is mapped")
}
