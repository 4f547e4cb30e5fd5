//! Locking shared by sroll's crates.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the guard if a previous holder panicked.
///
/// Every mutex in sroll guards plain data (maps of memos, queues, reports) that each critical
/// section leaves consistent at every step; a panic elsewhere while one was held does not make
/// that data unusable, and refusing it would turn one panicked task into a stuck operator.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panicking_holder_still_yields_its_data() {
        let m = Mutex::new(vec![1]);
        let _ = std::panic::catch_unwind(|| {
            let mut g = m.lock().expect("not poisoned yet");
            g.push(2);
            panic!("holder panics");
        });
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), vec![1, 2]);
    }
}
