//! What reaches what in a patch's objects, section by section (rustc gives every function and
//! every constant its own section), and which functions may therefore run as the host's copy.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use super::facts::{file_identity, ObjectFacts, Role, LAST_OBJECTS};
use crate::patch::changes::machine_code::normalise;

/// A section of one object: `(object index, section index)`.
type Node = (usize, usize);

/// The sections of every object, who reaches whom, and the global functions defined.
pub struct ObjectGraph {
    roles: BTreeMap<Node, Role>,
    /// Section to the sections that reach it.
    reached_by: BTreeMap<Node, Vec<Node>>,
    /// Section to the sections it reaches.
    reaches: BTreeMap<Node, Vec<Node>>,
    /// Every function symbol defined: mangled name, section, whether it is global (with its
    /// symbol table entry's position and object).
    functions: Vec<Function>,
    /// Sections holding a static a patch keeps its own copy of.
    own_statics: Vec<Node>,
    /// The names the objects define globally, with their sections.
    defined: BTreeMap<String, Node>,
    /// The references made by name (to a global symbol), which a bound function's stub answers.
    by_name: BTreeSet<(Node, Node)>,
    /// Sections the linker keeps unreached.
    kept: Vec<Node>,
}

/// What a patch's link needs (see [`ObjectGraph::needed`]).
pub struct Needed {
    /// The objects, by index.
    pub objects: BTreeSet<usize>,
    /// The bound functions referenced by name: each gets a stub.
    pub stubs: BTreeSet<String>,
}

struct Function {
    name: String,
    node: Node,
    global_entry: Option<usize>,
}

impl ObjectGraph {
    /// Reads every object's sections, symbols and relocations (or what an unchanged object gave
    /// at the last call).
    pub fn read(objects: &[PathBuf]) -> anyhow::Result<Self> {
        let mut graph = ObjectGraph {
            roles: BTreeMap::new(),
            reached_by: BTreeMap::new(),
            reaches: BTreeMap::new(),
            functions: Vec::new(),
            own_statics: Vec::new(),
            defined: BTreeMap::new(),
            by_name: BTreeSet::new(),
            kept: Vec::new(),
        };
        let mut remembered = LAST_OBJECTS.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = BTreeMap::new();
        let mut all = Vec::new();
        for path in objects {
            let identity = file_identity(path);
            let facts = match identity.as_ref().and_then(|id| remembered.remove(id)) {
                Some(facts) => facts,
                None => Arc::new(ObjectFacts::read(path)?),
            };
            if let Some(identity) = identity {
                seen.insert(identity, facts.clone());
            }
            all.push(facts);
        }
        *remembered = seen;
        drop(remembered);
        let mut globals: BTreeMap<&str, Node> = BTreeMap::new();
        for (object, facts) in all.iter().enumerate() {
            for (name, section) in &facts.globals {
                globals.insert(name, (object, *section));
            }
        }
        graph.defined = globals
            .iter()
            .map(|(n, node)| (n.to_string(), *node))
            .collect();
        for (object, facts) in all.iter().enumerate() {
            graph.add_object(object, facts, &globals);
        }
        Ok(graph)
    }

    fn add_object(&mut self, object: usize, facts: &ObjectFacts, globals: &BTreeMap<&str, Node>) {
        for (index, role) in facts.roles.iter().enumerate() {
            self.roles.insert((object, index), *role);
        }
        for (name, section, global_entry) in &facts.functions {
            self.functions.push(Function {
                name: name.clone(),
                node: (object, *section),
                global_entry: *global_entry,
            });
        }
        let own = facts.own_statics.iter().map(|section| (object, *section));
        self.own_statics.extend(own);
        self.kept
            .extend(facts.kept.iter().map(|section| (object, *section)));
        for (from, to) in &facts.local_edges {
            self.link((object, *from), (object, *to));
        }
        for (from, name) in &facts.named_edges {
            if let Some(to) = globals.get(name.as_str()) {
                self.link((object, *from), *to);
                self.by_name.insert(((object, *from), *to));
            }
        }
    }

    fn link(&mut self, from: Node, to: Node) {
        self.reached_by.entry(to).or_default().push(from);
        self.reaches.entry(from).or_default().push(to);
    }

    /// The global functions that may run as the host's copy (see the module docs).
    pub fn bindable(
        &self,
        differs: &BTreeSet<String>,
        host: &BTreeMap<String, u64>,
    ) -> BTreeSet<String> {
        let changed = self.changed(differs);
        self.functions
            .iter()
            .filter(|f| f.global_entry.is_some() && host.contains_key(f.name.as_str()))
            .filter(|f| !changed.contains(&f.node))
            .map(|f| f.name.clone())
            .collect()
    }

    /// The sections that differ from the base or reach what does, through code and constants.
    fn changed(&self, differs: &BTreeSet<String>) -> BTreeSet<Node> {
        let seeds = self
            .functions
            .iter()
            .filter(|f| differs.contains(&normalise(&f.name)))
            .map(|f| f.node)
            .chain(self.own_statics.iter().copied());
        let mut changed: BTreeSet<Node> = seeds.collect();
        let mut queue: VecDeque<Node> = changed.iter().copied().collect();
        while let Some(node) = queue.pop_front() {
            for &referrer in self.reached_by.get(&node).into_iter().flatten() {
                if self.roles.get(&referrer) == Some(&Role::Passes) && changed.insert(referrer) {
                    queue.push_back(referrer);
                }
            }
        }
        changed
    }

    /// Whether an object defines `name` globally.
    pub fn defines(&self, name: &str) -> bool {
        self.defined.contains_key(name)
    }

    /// What the link needs once the `bound` functions are stubs: the objects (by index) with a
    /// section the linker keeps, a section defining a name `exported` accepts (a function's
    /// name for local ones too), or a section these reach, except through a reference by name to
    /// a bound function, which its stub answers; and the bound functions so referenced. The other
    /// objects would only add what `--gc-sections` drops, after reading it.
    pub fn needed(&self, bound: &BTreeSet<String>, exported: impl Fn(&str) -> bool) -> Needed {
        let stubbed: BTreeMap<Node, &str> = self
            .functions
            .iter()
            .filter(|f| f.global_entry.is_some() && bound.contains(&f.name))
            .map(|f| (f.node, f.name.as_str()))
            .collect();
        let named = self.defined.iter().filter(|(name, _)| exported(name));
        let functions = self.functions.iter().filter(|f| exported(&f.name));
        let roots = named
            .map(|(_, node)| *node)
            .chain(functions.map(|f| f.node))
            .chain(self.kept.iter().copied());
        // An exported bound function is exported as its stub.
        let (stubbed_roots, roots): (Vec<Node>, Vec<Node>) =
            roots.partition(|node| stubbed.contains_key(node));
        let mut stubs: BTreeSet<String> = stubbed_roots
            .iter()
            .map(|node| stubbed[node].to_string())
            .collect();
        let mut reached: BTreeSet<Node> = roots.into_iter().collect();
        let mut queue: VecDeque<Node> = reached.iter().copied().collect();
        while let Some(node) = queue.pop_front() {
            for &to in self.reaches.get(&node).into_iter().flatten() {
                if let (Some(name), true) = (stubbed.get(&to), self.by_name.contains(&(node, to))) {
                    stubs.insert(name.to_string());
                } else if reached.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        Needed {
            objects: reached.iter().map(|(object, _)| *object).collect(),
            stubs,
        }
    }

    /// For each object (by index), the symbol table entries that define one of `bound`.
    pub fn definitions_of(&self, bound: &BTreeSet<String>) -> BTreeMap<usize, Vec<usize>> {
        let mut out: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for function in &self.functions {
            if let Some(entry) = function
                .global_entry
                .filter(|_| bound.contains(&function.name))
            {
                out.entry(function.node.0).or_default().push(entry);
            }
        }
        out
    }
}
