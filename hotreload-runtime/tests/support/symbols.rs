//! Symbols of ELF files read the simple way: the size of a function of this test executable (what
//! a patch's manifest gives the runtime for each function it redirects) and the offset of a
//! library's exported function.

/// The `st_size` of the function symbol at `address` (absolute, in this process).
pub fn function_size(address: usize) -> usize {
    static EXECUTABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let elf = EXECUTABLE
        .get_or_init(|| std::fs::read("/proc/self/exe").expect("the test executable is readable"));
    let wanted = (address - executable_base()) as u64;
    functions(elf, 2)
        .find(|&(_, value, _)| value == wanted)
        .map(|(_, _, size)| size as usize)
        .unwrap_or_else(|| panic!("no function symbol at {address:#x} in the test executable"))
}

/// The offset from its load base of the function `name` a shared library exports.
pub fn exported_offset(library: &[u8], name: &str) -> u64 {
    // SHT_DYNSYM
    functions(library, 11)
        .find(|&(symbol, _, _)| symbol == name.as_bytes())
        .map(|(_, value, _)| value)
        .unwrap_or_else(|| panic!("the library exports no function `{name}`"))
}

/// `(name, value, size)` of every function symbol in the sections of type `section_type`.
fn functions(elf: &[u8], section_type: u32) -> impl Iterator<Item = (&[u8], u64, u64)> + '_ {
    let u16_at = move |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap());
    let u32_at = move |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = move |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let headers = u64_at(0x28) as usize;
    let header_size = usize::from(u16_at(0x3a));
    let header = move |index: usize| headers + index * header_size;
    (0..usize::from(u16_at(0x3c)))
        .map(header)
        .filter(move |&h| u32_at(h + 4) == section_type)
        .flat_map(move |h| {
            let (offset, size) = (u64_at(h + 0x18) as usize, u64_at(h + 0x20) as usize);
            let strings = u64_at(header(u32_at(h + 0x28) as usize) + 0x18) as usize;
            (offset..offset + size)
                .step_by(24)
                .filter_map(move |symbol| {
                    // STT_FUNC
                    if elf[symbol + 4] & 0xf != 2 {
                        return None;
                    }
                    let name = &elf[strings + u32_at(symbol) as usize..];
                    let name = &name[..name.iter().position(|&b| b == 0)?];
                    Some((name, u64_at(symbol + 8), u64_at(symbol + 16)))
                })
        })
}

/// Where the executable is mapped: the start of its mapping at file offset 0.
pub fn executable_base() -> usize {
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
