//! The leaf tier: binary-format specifics (ELF64 objects and their in-place edits, x86-64
//! relocations and instructions, symbol and section reads, DWARF type layouts), like
//! libloading's `os/unix`. It knows nothing of hosts or patches: `host` and `patch` build on it,
//! and nothing here imports from them.

pub mod dwarf;
pub mod each;
pub mod edit;
pub mod elf;
pub mod read;
pub mod x86_64;
