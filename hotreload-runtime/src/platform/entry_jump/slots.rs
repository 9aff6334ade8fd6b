//! Jump slots: 16 bytes each, on pages mapped within ±2 GiB of the functions they serve, so a
//! 5-byte `jmp rel32` at a function's entry reaches one. A slot is `jmp qword ptr [rip + 2]`, two
//! bytes of `int3`, then the 8-byte target, aligned: retargeting is one atomic store, no stop.
//! Pages are read-and-execute except while a slot is written; they are never unmapped (a thread
//! may be passing through a slot at any time).

use std::sync::atomic::{AtomicU64, Ordering};

use super::code::{errno, page_size, JUMP_LEN};

/// Bytes per slot.
const SLOT_LEN: usize = 16;
/// `jmp qword ptr [rip + 2]`, then `int3` up to the target at offset 8.
const SLOT_CODE: [u8; 8] = [0xff, 0x25, 0x02, 0x00, 0x00, 0x00, 0xcc, 0xcc];
/// How far from a function a slot page is looked for, in steps of this size.
const SEARCH_STEP: usize = 1 << 20;

struct Page {
    base: usize,
    used: usize,
}

/// Every slot page mapped so far.
pub(super) struct SlotPages {
    pages: Vec<Page>,
}

impl SlotPages {
    pub(super) const fn new() -> SlotPages {
        SlotPages { pages: Vec::new() }
    }

    /// A fresh slot within reach of a jump at `entry`, mapping a page near it if none has room.
    /// `None`: no memory could be mapped within reach.
    pub(super) fn take_near(&mut self, entry: usize) -> Option<usize> {
        let page = page_size();
        let reachable = |slot: usize| super::code::jump_to(entry, slot).is_some();
        let index = match self
            .pages
            .iter()
            .position(|p| p.used + SLOT_LEN <= page && reachable(p.base + p.used))
        {
            Some(index) => index,
            None => {
                let base = map_page_near(entry, page)?;
                self.pages.push(Page { base, used: 0 });
                self.pages.len() - 1
            }
        };
        let p = &mut self.pages[index];
        let slot = p.base + p.used;
        p.used += SLOT_LEN;
        reachable(slot).then_some(slot)
    }
}

/// Maps one page of slots (each holding [`SLOT_CODE`] and a target of 0) within reach of `entry`,
/// trying addresses at growing distances below and above it.
fn map_page_near(entry: usize, page: usize) -> Option<usize> {
    let near = entry & !(SEARCH_STEP - 1);
    for step in 1..2040usize {
        for hint in [
            near.checked_sub(step * SEARCH_STEP),
            near.checked_add(step * SEARCH_STEP),
        ]
        .into_iter()
        .flatten()
        {
            // SAFETY: a fresh anonymous mapping at a hint that must not replace anything.
            let mapped = unsafe {
                libc::mmap(
                    hint as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if mapped == libc::MAP_FAILED {
                continue;
            }
            let base = mapped as usize;
            // Kernels before 4.17 treat the flag as a hint and may map elsewhere.
            if base != hint || super::code::jump_to(entry, base + page).is_none() {
                // SAFETY: the mapping was just made and nothing refers to it.
                unsafe { libc::munmap(mapped, page) };
                continue;
            }
            fill_page(base, page);
            return Some(base);
        }
    }
    None
}

fn fill_page(base: usize, page: usize) {
    for slot in (base..base + page).step_by(SLOT_LEN) {
        // SAFETY: the page was just mapped writable and is only reachable through this module.
        unsafe {
            std::ptr::copy_nonoverlapping(SLOT_CODE.as_ptr(), slot as *mut u8, SLOT_CODE.len());
            std::ptr::write_bytes((slot + SLOT_CODE.len()) as *mut u8, 0, 8);
        }
    }
    // SAFETY: as above; from now on the page is code.
    unsafe {
        libc::mprotect(
            base as *mut libc::c_void,
            page,
            libc::PROT_READ | libc::PROT_EXEC,
        )
    };
}

/// The target `slot` jumps to now.
pub(super) fn target_of(slot: usize) -> usize {
    // SAFETY: slots are 16-byte aligned inside pages that stay mapped; their target is at +8.
    let word = unsafe { &*((slot + SLOT_CODE.len()) as *const AtomicU64) };
    word.load(Ordering::SeqCst) as usize
}

/// Points `slot` at `target` with one atomic 8-byte store: a thread jumping through it goes to
/// the old or the new target, never to anything else. Allocates nothing and takes no lock.
///
/// # Safety
/// `slot` must be a slot [`SlotPages::take_near`] gave, and `target` the entry of a function
/// that may be run in place of the functions jumping to the slot, mapped for the process's life.
pub(super) unsafe fn set_target(slot: usize, target: usize) -> Result<(), i32> {
    let page = page_size();
    let start = slot & !(page - 1);
    let all = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    // SAFETY: the slot's page was mapped by `map_page_near`; it stays executable throughout, so
    // threads running other slots of it are not disturbed.
    if unsafe { libc::mprotect(start as *mut libc::c_void, page, all) } != 0 {
        return Err(errno());
    }
    // SAFETY: the target word is 8-byte aligned and writable now.
    let word = unsafe { &*((slot + SLOT_CODE.len()) as *const AtomicU64) };
    word.store(target as u64, Ordering::SeqCst);
    let code = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: as above.
    if unsafe { libc::mprotect(start as *mut libc::c_void, page, code) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// Whether `address` lies in the first bytes after an entry that a jump overwrites but does not
/// start at: `entry + 1 ..= entry + 4`.
pub(super) fn inside_jump(entry: usize, address: usize) -> bool {
    address > entry && address < entry + JUMP_LEN
}
