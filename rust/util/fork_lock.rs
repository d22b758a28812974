//! A lock for caches shared with helper threads that a forked child can always take.
//!
//! A `std::sync::Mutex` held by a helper thread at the moment of a `fork` stays locked forever
//! in the child, which has no such thread: the child's first wait on it never ends. This lock
//! records which process holds it. A process that finds it held by another process (its
//! parent, at the fork) takes it over and starts from the default value, as the holder may have
//! been halfway through changing it (the old value is left as it is, never read or dropped).
//! It is meant to be held for a few loads and stores, never while work is done, and touches no
//! thread-local storage (see `util/thread.rs`).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

/// A value behind a lock that records the holding process (see the module docs).
pub struct ForkLock<T> {
    /// The id of the process holding the lock, 0 when free.
    owner: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and one guard exists at a time in each
// process (a guard of another process's thread is gone with that thread).
unsafe impl<T: Send> Sync for ForkLock<T> {}

impl<T> std::fmt::Debug for ForkLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkLock").finish_non_exhaustive()
    }
}

/// Access to the value; the lock is let go when it is dropped.
pub struct Guard<'a, T> {
    lock: &'a ForkLock<T>,
}

impl<T: Default> ForkLock<T> {
    pub fn new(value: T) -> Self {
        Self {
            owner: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting while another thread of this process holds it.
    pub fn lock(&self) -> Guard<'_, T> {
        let me = std::process::id();
        loop {
            match self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Guard { lock: self },
                Err(holder) if holder != me => {
                    // Held by a thread of another process (this one was forked meanwhile): that
                    // thread is not here and will never let go.
                    if self
                        .owner
                        .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        // SAFETY: the lock is ours; the old value may be half-changed, so it is
                        // overwritten without being read or dropped (a leak, once per fork).
                        unsafe { std::ptr::write(self.value.get(), T::default()) };
                        return Guard { lock: self };
                    }
                }
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_take_turns() {
        let lock = Arc::new(ForkLock::new(0u64));
        let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                Box::new(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                }) as Box<dyn FnOnce() + Send>
            })
            .collect();
        crate::util::thread::run_all(tasks);
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn a_lock_held_by_another_process_is_taken_over_with_a_fresh_value() {
        let lock = ForkLock::new(vec![1u64, 2, 3]);
        let guard = lock.lock();
        // What a child forked now would see: held by a thread that does not exist there.
        std::mem::forget(guard);
        lock.owner
            .store(std::process::id().wrapping_add(1), Ordering::Relaxed);
        let mut fresh = lock.lock();
        assert!(fresh.is_empty());
        fresh.push(4);
        drop(fresh);
        assert_eq!(*lock.lock(), vec![4]);
    }
}
