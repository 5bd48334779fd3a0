//! Give back the stack pages a worker thread touched once and no longer uses.
//!
//! A thread's stack pages stay resident after the deepest call that touched
//! them returns. A session worker goes deepest while it starts (the telnet
//! engine, registering with the registry, rendering the login screen) and
//! then spends its life shallow, asleep in its poll; without this, every
//! idle session keeps those pages (about 16 KiB each). [`trim`] tells the
//! kernel (`madvise(MADV_DONTNEED)`) that the pages below the caller's frame
//! are free: they are dropped now and come back zeroed if a later call goes
//! that deep again. Nothing below the stack pointer is live, so this is
//! invisible to the program; it costs one system call (the waiter calls it
//! only at a few moments, see [`crate::session::waiter`]).

use std::cell::Cell;

const PAGE: usize = 4096;
/// Bytes below the caller's frame that are never released.
const MARGIN: usize = 512;

thread_local! {
    /// The lowest usable address of this thread's stack (0: not known).
    static STACK_LOW: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Release this thread's stack pages below the caller's frame (keeping a
/// small margin for the system call itself). Does nothing where the
/// stack bounds cannot be read.
#[inline(never)]
pub fn trim() {
    let Some(low) = stack_low() else { return };
    let marker = 0u8;
    let sp = std::hint::black_box(&marker) as *const u8 as usize;
    // The margin covers the libc wrapper's frame under ours (a few words)
    // and the x86-64 red zone; the page holding sp - MARGIN is kept.
    let end = sp.saturating_sub(MARGIN) & !(PAGE - 1);
    if end <= low {
        return;
    }
    // SAFETY: [low, end) lies inside this thread's own stack, below the
    // current frame and its margin: no live data is there. The pages
    // read back as zeros if touched again.
    unsafe {
        libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
    }
}

/// The lowest address of this thread's stack, read once per thread.
fn stack_low() -> Option<usize> {
    STACK_LOW.with(|cell| {
        if cell.get().is_none() {
            cell.set(Some(read_stack_low().unwrap_or(0)));
        }
        cell.get().filter(|&low| low != 0)
    })
}

fn read_stack_low() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills the zeroed attr for the calling
    // thread; it is destroyed after reading the stack bounds from it.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 || addr.is_null() {
            return None;
        }
        // Page-align upwards: never touch a page shared with a guard.
        Some((addr as usize + PAGE - 1) & !(PAGE - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn deep(n: usize) -> u64 {
        let mut buf = [0u8; 8192];
        buf[n % 8192] = n as u8;
        std::hint::black_box(&mut buf);
        buf.iter().map(|&b| b as u64).sum()
    }

    #[test]
    fn trimming_after_a_deep_call_keeps_the_thread_working() {
        let t = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let first = deep(7);
                trim();
                // The freed pages come back zeroed and usable.
                let second = deep(7);
                trim();
                trim();
                (first, second)
            })
            .unwrap();
        assert_eq!(t.join().unwrap(), (7, 7));
    }

    #[test]
    fn a_worker_thread_knows_its_stack() {
        let low = std::thread::spawn(stack_low).join().unwrap();
        assert!(low.is_some());
    }
}
