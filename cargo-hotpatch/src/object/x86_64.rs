//! x86-64 specifics: the ELF relocation types the patch pipeline reads or rewrites, and the one
//! instruction pattern it edits (`lea X(%rip), %reg` into `mov X(%rip), %reg`).

pub const R_X86_64_NONE: u32 = 0;
pub const R_X86_64_64: u32 = 1;
pub const R_X86_64_PC32: u32 = 2;
pub const R_X86_64_DTPOFF64: u32 = 17;
pub const R_X86_64_TLSGD: u32 = 19;
pub const R_X86_64_TLSLD: u32 = 20;
pub const R_X86_64_DTPOFF32: u32 = 21;
pub const R_X86_64_GOTTPOFF: u32 = 22;
pub const R_X86_64_TPOFF32: u32 = 23;

/// The opcode of `mov r/m64, r64` loading from memory, which replaces `lea`'s `0x8d`.
pub const MOV_LOAD_OPCODE: u8 = 0x8b;

/// Whether the 32-bit displacement at `at` belongs to a `lea disp32(%rip), %reg` (REX.W prefix,
/// opcode `0x8d`, RIP-relative ModRM): the opcode is then at `at - 2`.
pub fn is_rip_relative_lea(bytes: &[u8], at: usize) -> bool {
    at >= 3
        && matches!(bytes[at - 3], 0x48 | 0x4c)
        && bytes[at - 2] == 0x8d
        && bytes[at - 1] & 0xc7 == 0x05
}
