//! [`Update`]: the set of new code (and state versions) that one commit installs.

use std::any::{type_name, TypeId};
use std::fmt;
use std::mem;

use super::Code;
use crate::error::Error;
use crate::slot::HotFunction;
use crate::state::{HotState, StateType, Transition, TransitionSet};

/// A set of slots with new code, committed all or nothing by [`Table::commit`](super::Table::commit).
pub struct Update {
    pub(super) label: String,
    pub(super) entries: Vec<Entry>,
    pub(super) states: TransitionSet,
}

/// One function an update replaces: the code its slots get, and the plain code behind it (the
/// same unless the slots get a contained entry).
pub(super) struct Entry {
    pub(super) function: &'static HotFunction,
    pub(super) code: Code,
    pub(super) plain: Code,
}

impl Update {
    /// An empty update; `label` names it in the history.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            entries: Vec::new(),
            states: TransitionSet::default(),
        }
    }

    /// Migrates every live value of `T`'s name to `T`'s version at the commit, with the slots;
    /// rollback migrates them back.
    pub fn migrate<T: HotState>(self) -> Self {
        self.migrate_to(T::state_type())
    }

    /// [`Update::migrate`] with the descriptor of the version to migrate to. A later call for the
    /// same type name replaces an earlier one.
    pub fn migrate_to(mut self, to: &'static StateType) -> Self {
        self.states.transitions.retain(|t| t.to.name() != to.name());
        self.states.transitions.push(Transition { to });
        self
    }

    /// Replaces `function`'s code with `code`, a function pointer of exactly the slot's type
    /// (for example `fee_v2 as fn(u64, u64) -> u64`); any other type is refused.
    pub fn replace<F: Copy + 'static>(
        mut self,
        function: &'static HotFunction,
        code: F,
    ) -> Result<Self, Error> {
        if TypeId::of::<F>() != function.fn_type_id()
            || mem::size_of::<F>() != mem::size_of::<*const ()>()
        {
            return Err(Error::SignatureMismatch {
                key: function.key().to_string(),
                expected: function.signature(),
                found: type_name::<F>(),
            });
        }
        // SAFETY: `F` is the slot's function pointer type (same `TypeId`), which has the size of a
        // pointer, so its bits are a code address.
        let address = unsafe { mem::transmute_copy::<F, *const ()>(&code) };
        self.entries.push(Entry {
            function,
            code: Code(address),
            plain: Code(address),
        });
        Ok(self)
    }

    /// Replaces `function`'s code with the function at `code`, as found in a loaded library.
    ///
    /// # Safety
    /// `code` must be the address of a function of exactly the type of `function`'s slot (same
    /// arguments, return type and ABI) whose code stays mapped for the rest of the process.
    pub unsafe fn replace_raw(mut self, function: &'static HotFunction, code: *const ()) -> Self {
        self.entries.push(Entry {
            function,
            code: Code(code),
            plain: Code(code),
        });
        self
    }

    /// Replaces `function`'s code with `replacement`'s (a registration of a loaded library under
    /// the same key), behind its contained entry when rollback on panic is on (see
    /// [`crate::docs::patterns`]).
    ///
    /// # Safety
    /// `replacement`'s code must have exactly the type of `function`'s slot (same arguments,
    /// return type and ABI) and stay mapped for the rest of the process.
    pub unsafe fn replace_with(
        mut self,
        function: &'static HotFunction,
        replacement: &'static HotFunction,
    ) -> Self {
        let plain = Code(replacement.original());
        let code = if crate::contain::is_on() {
            Code(replacement.contained())
        } else {
            plain
        };
        self.entries.push(Entry {
            function,
            code,
            plain,
        });
        self
    }

    /// Number of functions the update replaces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the update replaces no function and migrates no state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.states.is_empty()
    }
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("label", &self.label)
            .field(
                "functions",
                &self
                    .entries
                    .iter()
                    .map(|entry| entry.function.key())
                    .collect::<Vec<_>>(),
            )
            .field("states", &self.states)
            .finish()
    }
}
