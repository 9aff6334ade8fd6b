//! The formats that cross the process boundary, shared by the runtime and `cargo hotpatch` so
//! that the parser of one side is the printer of the other: the patch file, the control protocol
//! and the `.hotreload_states` records. This module depends on nothing else of the runtime.

pub mod patch_file;
pub mod protocol;
pub mod state_record;
