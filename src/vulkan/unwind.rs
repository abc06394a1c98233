//! The one unwind-guard idiom of the Vulkan adapter: [`Unwind`] owns
//! something half built (a command pool and fence before the submit,
//! semaphores, a descriptor pool, an instance before its device) and
//! destroys it when an error path drops it, unless
//! [`handover`](Unwind::handover) gives it to its owner first.

use std::ops::{Deref, DerefMut};

/// What an [`Unwind`] destroys on an error path.
pub(super) trait Cleanup {
    /// Destroys what was built so far. Runs only on values never handed
    /// over, so nothing was submitted with them (or the GPU is done).
    fn clean_up(&mut self);
}

/// Owns a half-built `T`: destroyed on drop unless handed over.
pub(super) struct Unwind<T: Cleanup>(Option<T>);

impl<T: Cleanup> Unwind<T> {
    /// Guards `value`.
    pub(super) fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// Hands the value to its owner: no longer destroyed here.
    pub(super) fn handover(mut self) -> T {
        self.0.take().expect("an Unwind holds its value until handed over")
    }
}

impl<T: Cleanup> Deref for Unwind<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("an Unwind holds its value until handed over")
    }
}

impl<T: Cleanup> DerefMut for Unwind<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("an Unwind holds its value until handed over")
    }
}

impl<T: Cleanup> Drop for Unwind<T> {
    fn drop(&mut self) {
        if let Some(mut value) = self.0.take() {
            value.clean_up();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Counted<'a>(&'a Cell<u32>);

    impl Cleanup for Counted<'_> {
        fn clean_up(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn destroys_on_drop_unless_handed_over() {
        let destroyed = Cell::new(0);
        drop(Unwind::new(Counted(&destroyed)));
        assert_eq!(destroyed.get(), 1);
        let Counted(_) = Unwind::new(Counted(&destroyed)).handover();
        assert_eq!(destroyed.get(), 1, "a handed-over value is its owner's to destroy");
    }
}
