//! What one object says about reaching: each section's role, the functions and globals it
//! defines, and which sections its relocations reach. Remembered by file identity between patch
//! builds, like the function fingerprints: most objects of a save are the same files as last time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::object::elf::{Elf, SHF_EXECINSTR, SHF_GNU_RETAIN, SHT_RELA};
use crate::patch::changes::machine_code::FileIdentity;

/// `SHF_ALLOC`: the section is loaded.
const SHF_ALLOC: u64 = 0x2;
/// `SHF_WRITE`: the section is writable.
const SHF_WRITE: u64 = 0x1;
/// `STB_LOCAL`, `STB_GLOBAL`, `STT_FUNC`, `SHN_LORESERVE`.
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STT_FUNC: u8 = 2;
const SHN_LORESERVE: u16 = 0xff00;

/// Statics whose patch copy differs from the host's on purpose: the host's copy of code touching
/// them would act on the host's items (a `#[hot_state]` type's descriptor, a registration).
pub(super) const OWN_STATICS: &[&str] = &["__HOT_STATE", "__INVENTORY"];

/// How a section takes part in reaching.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Code, constants, vtables: what reaches changed code is changed too.
    Passes,
    /// A static: code reaching it reaches the host's copy (or its own, kept in step).
    Stops,
    /// Not loaded, or unwind tables: ignored.
    Ignored,
}

/// The facts of the objects read at the last call, by file identity.
pub(super) static LAST_OBJECTS: Mutex<BTreeMap<FileIdentity, Arc<ObjectFacts>>> =
    Mutex::new(BTreeMap::new());

/// One object's facts; sections by index.
pub(super) struct ObjectFacts {
    pub roles: Vec<Role>,
    /// Global, weak or unique definitions: name and section.
    pub globals: Vec<(String, usize)>,
    /// Function definitions: name, section, and the symbol table entry's position if global.
    pub functions: Vec<(String, usize, Option<usize>)>,
    /// Sections holding a static a patch keeps its own copy of.
    pub own_statics: Vec<usize>,
    /// Section to section, inside the object.
    pub local_edges: Vec<(usize, usize)>,
    /// Section to a global or undefined symbol's name.
    pub named_edges: Vec<(usize, String)>,
    /// Sections the linker keeps whether or not anything reaches them.
    pub kept: Vec<usize>,
}

/// What a relocation's symbol stands for.
enum Target {
    /// A section of the same object (a local symbol, or a section symbol).
    Section(usize),
    /// A global or undefined symbol, found by name among every object's definitions.
    Named(String),
}

impl ObjectFacts {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let elf = Elf::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        let mut facts = ObjectFacts {
            roles: elf
                .sections
                .iter()
                .map(|s| role(&s.name, s.flags))
                .collect(),
            globals: Vec::new(),
            functions: Vec::new(),
            own_statics: Vec::new(),
            local_edges: Vec::new(),
            named_edges: Vec::new(),
            kept: elf
                .sections
                .iter()
                .enumerate()
                .filter(|(_, s)| kept_by_linker(&s.name, s.kind, s.flags))
                .map(|(index, _)| index)
                .collect(),
        };
        facts.add_symbols(&bytes, &elf);
        facts.add_edges(&bytes, &elf);
        Ok(facts)
    }

    fn add_symbols(&mut self, bytes: &[u8], elf: &Elf) {
        for symbol in &elf.symbols {
            if symbol.section == 0 || symbol.section >= SHN_LORESERVE {
                continue;
            }
            let section = usize::from(symbol.section);
            let binding = bytes[symbol.entry_at + 4] >> 4;
            // Weak and unique definitions are reached by name too; only global ones are bound.
            if binding != STB_LOCAL {
                self.globals.push((symbol.name.clone(), section));
            }
            if symbol.kind == STT_FUNC {
                let global_entry = (binding == STB_GLOBAL).then_some(symbol.entry_at);
                self.functions
                    .push((symbol.name.clone(), section, global_entry));
            }
            if OWN_STATICS.iter().any(|own| symbol.name.contains(own)) {
                self.own_statics.push(section);
            }
        }
    }

    fn add_edges(&mut self, bytes: &[u8], elf: &Elf) {
        // What each symbol stands for, worked out once: a section here, or a name to find.
        let targets: Vec<Option<Target>> = elf
            .symbols
            .iter()
            .map(|symbol| {
                let local = bytes[symbol.entry_at + 4] >> 4 == STB_LOCAL;
                if symbol.section == 0 || !local {
                    Some(Target::Named(symbol.name.clone()))
                } else if symbol.section < SHN_LORESERVE {
                    Some(Target::Section(usize::from(symbol.section)))
                } else {
                    None
                }
            })
            .collect();
        for rela_section in elf.sections.iter().filter(|s| s.kind == SHT_RELA) {
            let from = rela_section.info as usize;
            // Debug information and unwind tables reach everything and run nothing.
            if self
                .roles
                .get(from)
                .is_none_or(|role| *role == Role::Ignored)
            {
                continue;
            }
            let reached: BTreeSet<usize> = elf
                .relas(bytes, rela_section)
                .iter()
                .map(|rela| rela.symbol as usize)
                .collect();
            for symbol in reached {
                match targets.get(symbol) {
                    Some(Some(Target::Named(name))) => self.named_edges.push((from, name.clone())),
                    Some(Some(Target::Section(to))) => self.local_edges.push((from, *to)),
                    _ => {}
                }
            }
        }
    }
}

/// The identity of `path`'s file (see [`FileIdentity`]).
pub(super) fn file_identity(path: &Path) -> Option<FileIdentity> {
    crate::patch::changes::machine_code::file_identity(path)
}

/// `SHT_NOTE`.
const SHT_NOTE: u32 = 7;

/// Whether `--gc-sections` keeps a loaded section unreached: constructors and destructors, notes,
/// sections marked retained, and sections named as C identifiers (`__start_`/`__stop_` may
/// reach them, which no relocation shows).
fn kept_by_linker(name: &str, kind: u32, flags: u64) -> bool {
    const RESERVED: [&str; 7] = [
        ".init_array",
        ".fini_array",
        ".preinit_array",
        ".ctors",
        ".dtors",
        ".init",
        ".fini",
    ];
    let c_identifier = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    flags & SHF_ALLOC != 0
        && (flags & SHF_GNU_RETAIN != 0
            || kind == SHT_NOTE
            || c_identifier
            || RESERVED.iter().any(|reserved| {
                name.strip_prefix(reserved)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            }))
}

/// A section's part in reaching, from its name and flags.
pub(super) fn role(name: &str, flags: u64) -> Role {
    if flags & SHF_ALLOC == 0 || name.starts_with(".eh_frame") {
        Role::Ignored
    } else if flags & SHF_EXECINSTR != 0
        || flags & SHF_WRITE == 0
        || name.starts_with(".data.rel.ro")
    {
        Role::Passes
    } else {
        Role::Stops
    }
}
