//! Pause points in the long loops of a large reload (parsing, validating and compiling a table
//! of a million names, and freeing the old one).
//!
//! A reload runs on a thread of its own at low priority, but on a core that also serves
//! requests (the proxy may be pinned to one) a low-priority thread is not preempted the moment
//! a request arrives: the scheduler lets it finish its slice, up to a tick or two (4–8 ms at
//! `HZ=250`), and every request that arrives meanwhile waits. So the caller may install a hook
//! for its thread, called from the loops here every [`EVERY`] steps; the proxy's hook yields
//! the CPU when a request is waiting. Without a hook a pause point costs a thread-local
//! counter increment.

use std::cell::Cell;

/// Steps between calls of the hook.
pub const EVERY: u32 = 256;

thread_local! {
    static HOOK: Cell<Option<fn()>> = const { Cell::new(None) };
    static STEPS: Cell<u32> = const { Cell::new(0) };
}

/// Sets (or with `None` clears) the hook for the calling thread.
pub fn set_hook(hook: Option<fn()>) {
    HOOK.with(|h| h.set(hook));
}

/// Calls the hook now, if the thread has one (between the chunks of a long read or write).
pub fn now() {
    if let Some(hook) = HOOK.with(Cell::get) {
        hook();
    }
}

/// One step of a long loop: calls the hook every [`EVERY`] steps.
#[inline]
pub fn point() {
    let due = STEPS.with(|s| {
        let n = s.get().wrapping_add(1);
        s.set(n);
        n % EVERY == 0
    });
    if due {
        if let Some(hook) = HOOK.with(Cell::get) {
            hook();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static CALLS: AtomicU32 = AtomicU32::new(0);

    fn count() {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn the_hook_runs_every_so_many_steps_on_its_thread_only() {
        std::thread::spawn(|| {
            set_hook(Some(count));
            for _ in 0..EVERY * 10 {
                point();
            }
            set_hook(None);
            for _ in 0..EVERY * 10 {
                point();
            }
        })
        .join()
        .unwrap();
        for _ in 0..EVERY * 10 {
            point();
        }
        assert_eq!(CALLS.load(Ordering::Relaxed), 10);
    }
}
