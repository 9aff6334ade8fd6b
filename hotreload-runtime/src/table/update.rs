//! [`Update`]: the set of new code (and state versions) that one commit installs.

use std::any::{type_name, TypeId};
use std::fmt;
use std::mem;

use super::{Code, EntrySet};
use crate::entry::{EntryLimits, EntryTarget};
use crate::error::Error;
use crate::slot::HotFunction;
use crate::state::{HotState, StateType, Transition, TransitionSet};

/// A set of slots with new code, committed all or nothing by [`Table::commit`](super::Table::commit).
pub struct Update {
    pub(super) label: String,
    pub(super) entries: Vec<(&'static HotFunction, Code)>,
    pub(super) states: TransitionSet,
    /// The functions whose entries are redirected after the commit, if it sets them.
    pub(super) entry_redirects: Option<EntrySet>,
}

impl Update {
    /// An empty update; `label` names it in the history.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            entries: Vec::new(),
            states: TransitionSet::default(),
            entry_redirects: None,
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
        self.entries.push((function, Code(address)));
        Ok(self)
    }

    /// Replaces `function`'s code with the function at `code`, as found in a loaded library.
    ///
    /// # Safety
    /// `code` must be the address of a function of exactly the type of `function`'s slot (same
    /// arguments, return type and ABI) whose code stays mapped for the rest of the process.
    pub unsafe fn replace_raw(mut self, function: &'static HotFunction, code: *const ()) -> Self {
        self.entries.push((function, Code(code)));
        self
    }

    /// Makes the functions whose entries are redirected exactly `targets` at the commit, in the
    /// same swap as the slots (see [`crate::entry::redirect_entries`]): functions not redirected
    /// yet get a jump, redirected ones a new target, redirected ones `targets` leaves out their
    /// original bytes. Rollback makes them what they were before. If the entries cannot be
    /// written within `limits`, the commit changes nothing.
    ///
    /// # Safety
    /// As [`crate::entry::redirect_entries`]: each target must be the entry of a function that
    /// may run in place of the one at its `entry`, mapped for the rest of the process.
    pub unsafe fn redirect_entries(
        mut self,
        targets: Vec<EntryTarget>,
        limits: EntryLimits,
    ) -> Self {
        self.entry_redirects = Some(EntrySet { targets, limits });
        self
    }

    /// Number of functions the update replaces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the update replaces no function and migrates no state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.states.is_empty() && self.entry_redirects.is_none()
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
                    .map(|(function, _)| function.key())
                    .collect::<Vec<_>>(),
            )
            .field("states", &self.states)
            .finish()
    }
}
