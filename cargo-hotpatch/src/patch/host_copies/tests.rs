//! Which functions are bound, on objects written here the way rustc lays them out: one section
//! per function and per constant.

use std::collections::BTreeSet;

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, Object as _, ObjectSection as _, ObjectSymbol as _,
    RelocationFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

use super::graph::ObjectGraph;
use super::stubs::{stub_object, Stub};
use crate::object::x86_64::R_X86_64_PC32;

struct Builder(Object<'static>);

impl Builder {
    fn new() -> Self {
        Builder(Object::new(
            BinaryFormat::Elf,
            Architecture::X86_64,
            Endianness::Little,
        ))
    }

    fn define(
        &mut self,
        name: &str,
        kind: SectionKind,
        scope: SymbolScope,
    ) -> (SectionId, SymbolId) {
        let section = self
            .0
            .add_section(Vec::new(), format!(".x.{name}").into_bytes(), kind);
        self.0.append_section_data(section, &[0x90; 16], 16);
        let symbol = self.0.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 16,
            kind: if kind == SectionKind::Text {
                SymbolKind::Text
            } else {
                SymbolKind::Data
            },
            scope,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        (section, symbol)
    }

    fn reach(&mut self, from: SectionId, to: SymbolId) {
        let flags = RelocationFlags::Elf {
            r_type: R_X86_64_PC32,
        };
        let relocation = Relocation {
            offset: 1,
            symbol: to,
            addend: -4,
            flags,
        };
        self.0.add_relocation(from, relocation).unwrap();
    }
}

fn host(names: &[&str]) -> std::collections::BTreeMap<String, u64> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), 0x1000 * i as u64 + 0x1000))
        .collect()
}

#[test]
fn what_reaches_changed_code_through_code_or_constants_stays_and_the_rest_is_bound() {
    let mut b = Builder::new();
    let global = SymbolScope::Linkage;
    let (_, changed) = b.define("changed", SectionKind::Text, global);
    let (caller, caller_symbol) = b.define("caller", SectionKind::Text, global);
    b.reach(caller, changed);
    let (outer, _) = b.define("outer", SectionKind::Text, global);
    b.reach(outer, caller_symbol);
    // A vtable (a constant) naming the changed function, and code using the vtable.
    let (vtable, vtable_symbol) = b.define(
        "vtable",
        SectionKind::ReadOnlyData,
        SymbolScope::Compilation,
    );
    b.reach(vtable, changed);
    let (user, _) = b.define("uses_vtable", SectionKind::Text, global);
    b.reach(user, vtable_symbol);
    // A static holding a pointer to the changed function: code reading it reaches the host's.
    let (slot, slot_symbol) = b.define("slot", SectionKind::Data, SymbolScope::Compilation);
    b.reach(slot, changed);
    let (reads_slot, _) = b.define("reads_slot", SectionKind::Text, global);
    b.reach(reads_slot, slot_symbol);
    let (_, _) = b.define("leaf", SectionKind::Text, global);
    let (_, _) = b.define("private", SectionKind::Text, SymbolScope::Compilation);
    let (_, _) = b.define("not_in_host", SectionKind::Text, global);
    // A constructor registers the patch's own registration, whose vtable names `submit`: the
    // host's copy of the constructor would register the host's, while `submit` is the same code.
    let (_, submit_symbol) = b.define("submit", SectionKind::Text, global);
    let (registry_vtable, registry_vtable_symbol) = b.define(
        "registry_vtable",
        SectionKind::ReadOnlyData,
        SymbolScope::Compilation,
    );
    b.reach(registry_vtable, submit_symbol);
    let (registration, registration_symbol) = b.define(
        "f::__INVENTORY",
        SectionKind::Data,
        SymbolScope::Compilation,
    );
    b.reach(registration, registry_vtable_symbol);
    let (ctor, ctor_symbol) = b.define("ctor", SectionKind::Text, global);
    b.reach(ctor, registration_symbol);
    let init_array =
        b.0.add_section(Vec::new(), b".init_array.1".to_vec(), SectionKind::Elf(14));
    b.0.append_section_data(init_array, &[0; 8], 8);
    b.reach(init_array, ctor_symbol);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.o");
    std::fs::write(&path, b.0.write().unwrap()).unwrap();
    let graph = ObjectGraph::read(&[path]).unwrap();
    let differs: BTreeSet<String> = ["changed".to_owned()].into();
    let running = host(&[
        "changed",
        "caller",
        "outer",
        "uses_vtable",
        "reads_slot",
        "leaf",
        "private",
        "submit",
        "ctor",
    ]);
    let bound: Vec<String> = graph.bindable(&differs, &running).into_iter().collect();
    assert_eq!(bound, ["leaf", "reads_slot", "submit"]);
}

#[test]
fn a_stub_jumps_through_a_cell_the_loader_sets_from_the_anchor() {
    let stub = Stub {
        function: "f".to_owned(),
        cell: "cell.0".to_owned(),
        from_anchor: -0x40,
    };
    let bytes = stub_object("main", &[stub]).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let f = file.symbols().find(|s| s.name() == Ok("f")).unwrap();
    assert!(f.is_global() && f.kind() == SymbolKind::Text);
    let code = file.section_by_index(f.section_index().unwrap()).unwrap();
    assert_eq!(&code.data().unwrap()[..2], &[0xff, 0x25]);
    let (offset, jump) = code.relocations().next().unwrap();
    assert_eq!((offset, jump.addend()), (2, -4));
    let cell = file.symbol_by_index(symbol_of(&jump)).unwrap();
    assert_eq!(cell.name(), Ok("cell.0"));
    assert!(cell.is_local() && cell.size() == 8);
    let cell_section = file
        .section_by_index(cell.section_index().unwrap())
        .unwrap();
    let (_, address) = cell_section.relocations().next().unwrap();
    let anchor = file.symbol_by_index(symbol_of(&address)).unwrap();
    assert_eq!((anchor.name(), anchor.is_undefined()), (Ok("main"), true));
    assert_eq!(address.addend(), -0x40);
}

fn symbol_of(relocation: &object::Relocation) -> object::SymbolIndex {
    match relocation.target() {
        object::RelocationTarget::Symbol(symbol) => symbol,
        other => panic!("a relocation to a symbol, not {other:?}"),
    }
}

impl Builder {
    /// An undefined reference to `name`, as an object calling another unit's function has.
    fn refer(&mut self, name: &str) -> SymbolId {
        self.0.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    }

    fn write_to(self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.0.write().unwrap()).unwrap();
        path
    }
}

#[test]
fn the_link_needs_only_objects_reached_from_its_roots_other_than_through_stubs() {
    let global = SymbolScope::Linkage;
    let dir = tempfile::tempdir().unwrap();
    // A hot function's code (exported) calling a bound function and an unbound one.
    let mut root = Builder::new();
    let (hot, _) = root.define("f__hot_original_0123", SectionKind::Text, global);
    let bound = root.refer("bound");
    let unbound = root.refer("unbound");
    root.reach(hot, bound);
    root.reach(hot, unbound);
    // The bound function and what only it reaches: its stub answers the call.
    let mut behind_stub = Builder::new();
    let (bound_code, _) = behind_stub.define("bound", SectionKind::Text, global);
    let (_, only_from_bound) = behind_stub.define("only_from_bound", SectionKind::Text, global);
    behind_stub.reach(bound_code, only_from_bound);
    let mut called = Builder::new();
    called.define("unbound", SectionKind::Text, global);
    // A constructor, which the linker keeps though nothing reaches it.
    let mut constructor = Builder::new();
    let (_, ctor) = constructor.define("ctor", SectionKind::Text, global);
    let init_array =
        constructor
            .0
            .add_section(Vec::new(), b".init_array.1".to_vec(), SectionKind::Elf(14));
    constructor.0.append_section_data(init_array, &[0; 8], 8);
    constructor.0.section_mut(init_array).flags = object::SectionFlags::Elf {
        sh_flags: u64::from(object::elf::SHF_ALLOC | object::elf::SHF_WRITE),
    };
    constructor.reach(init_array, ctor);
    let mut unreached = Builder::new();
    unreached.define("unreached", SectionKind::Text, global);
    let objects = [
        root.write_to(dir.path(), "root.o"),
        behind_stub.write_to(dir.path(), "behind_stub.o"),
        called.write_to(dir.path(), "called.o"),
        constructor.write_to(dir.path(), "constructor.o"),
        unreached.write_to(dir.path(), "unreached.o"),
    ];
    let graph = ObjectGraph::read(&objects).unwrap();
    let bound: BTreeSet<String> = ["bound".to_owned(), "only_from_bound".to_owned()].into();
    let needed = graph.needed(&bound, |name| name.contains("__hot_original_"));
    assert_eq!(needed.objects, [0, 2, 3].into());
    assert_eq!(needed.stubs, ["bound".to_owned()].into());
    // Exported and bound (generic code named after a hot function's, unchanged): its stub is
    // exported, and what only it reaches is not needed.
    let exported_too = |name: &str| name.contains("__hot_original_") || name == "only_from_bound";
    let needed = graph.needed(&bound, exported_too);
    assert_eq!(needed.objects, [0, 2, 3].into());
    assert_eq!(
        needed.stubs,
        ["bound".to_owned(), "only_from_bound".to_owned()].into()
    );
}
