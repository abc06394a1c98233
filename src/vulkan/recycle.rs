//! Reuse of the objects every submission needs: a command pool with its
//! command buffer and a fence, semaphores (the wait payloads, the exported
//! completion), descriptor pools. A finished [`Submission`] hands them back
//! here instead of destroying them, and the next one takes them, reset:
//! a steady stream of frames (a source's ring, the viewer's composite)
//! creates none per frame.
//!
//! What may be reused, and when (Vulkan spec):
//! - the command pool, its buffer and the fence only once the fence has
//!   signalled (the buffer is no longer pending,
//!   VUID-vkResetCommandPool-commandPool-00040; VUID-vkResetFences-pFences-01123);
//! - a semaphore that waited on a temporarily imported SYNC_FD payload is
//!   back on its permanent, unsignalled payload once the wait ran;
//! - the exported completion semaphore only when its SYNC_FD export ran
//!   (which unsignals it): a semaphore left signalled cannot be signalled
//!   again (VUID-vkQueueSubmit-pSignalSemaphores-00067);
//! - a descriptor pool once no set of it is in use, reset (its sets freed).
//!
//! At most [`KEEP`] of each are kept; the rest are destroyed. The context
//! destroys what is kept when it goes away.
//!
//! [`Submission`]: super::Submission

use std::sync::Mutex;

use ash::vk;

/// How many of each kind are kept for reuse.
pub(crate) const KEEP: usize = 8;

/// A command pool with its one primary command buffer, and a fence.
pub(crate) struct Frame {
    pub pool: vk::CommandPool,
    pub cb: vk::CommandBuffer,
    pub fence: vk::Fence,
}

#[derive(Default)]
struct Lists {
    frames: Vec<Frame>,
    semaphores: Vec<vk::Semaphore>,
    exportable: Vec<vk::Semaphore>,
    descriptor_pools: Vec<vk::DescriptorPool>,
    reused: u64,
}

/// The objects kept for reuse (one per context).
#[derive(Default)]
pub(crate) struct Recycler {
    lists: Mutex<Lists>,
}

impl Recycler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        // Entries are pushed and popped whole.
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reset frame, if one is kept.
    pub(crate) fn take_frame(&self) -> Option<Frame> {
        let mut lists = self.lock();
        let frame = lists.frames.pop();
        lists.reused += u64::from(frame.is_some());
        frame
    }

    /// Takes `frame` back once its fence has signalled: resets the pool
    /// (its buffer back to the initial state) and the fence; destroys it
    /// when enough are kept or a reset fails.
    pub(crate) fn put_frame(&self, device: &ash::Device, frame: Frame) {
        // SAFETY: the fence has signalled (the caller's contract), so the
        // command buffer is not pending and the fence is not in use.
        let reset = unsafe {
            device
                .reset_command_pool(frame.pool, vk::CommandPoolResetFlags::empty())
                .and_then(|()| device.reset_fences(&[frame.fence]))
        };
        let mut lists = self.lock();
        if reset.is_ok() && lists.frames.len() < KEEP {
            lists.frames.push(frame);
            return;
        }
        drop(lists);
        // SAFETY: ours and idle (see above).
        unsafe {
            device.destroy_command_pool(frame.pool, None);
            device.destroy_fence(frame.fence, None);
        }
    }

    /// A kept semaphore (unsignalled), exportable as SYNC_FD or not.
    pub(crate) fn take_semaphore(&self, exportable: bool) -> Option<vk::Semaphore> {
        let mut lists = self.lock();
        let semaphore = if exportable {
            lists.exportable.pop()
        } else {
            lists.semaphores.pop()
        };
        lists.reused += u64::from(semaphore.is_some());
        semaphore
    }

    /// Takes back a semaphore that is unsignalled and unused (the rules in
    /// the module docs); destroys it when enough are kept.
    pub(crate) fn put_semaphore(&self, device: &ash::Device, semaphore: vk::Semaphore, exportable: bool) {
        let mut lists = self.lock();
        let list = if exportable {
            &mut lists.exportable
        } else {
            &mut lists.semaphores
        };
        if list.len() < KEEP {
            list.push(semaphore);
            return;
        }
        drop(lists);
        // SAFETY: ours and unused.
        unsafe { device.destroy_semaphore(semaphore, None) };
    }

    /// A kept descriptor pool (reset: no sets allocated).
    pub(crate) fn take_descriptor_pool(&self) -> Option<vk::DescriptorPool> {
        let mut lists = self.lock();
        let pool = lists.descriptor_pools.pop();
        lists.reused += u64::from(pool.is_some());
        pool
    }

    /// Takes back a descriptor pool none of whose sets is in use any more:
    /// reset (its sets freed), or destroyed when enough are kept.
    pub(crate) fn put_descriptor_pool(&self, device: &ash::Device, pool: vk::DescriptorPool) {
        // SAFETY: no command buffer using its sets is pending (the caller's
        // contract: the submission's fence signalled).
        let reset = unsafe { device.reset_descriptor_pool(pool, vk::DescriptorPoolResetFlags::empty()) };
        let mut lists = self.lock();
        if reset.is_ok() && lists.descriptor_pools.len() < KEEP {
            lists.descriptor_pools.push(pool);
            return;
        }
        drop(lists);
        // SAFETY: ours and idle.
        unsafe { device.destroy_descriptor_pool(pool, None) };
    }

    /// How many objects were handed out again instead of created.
    pub(crate) fn reused(&self) -> u64 {
        self.lock().reused
    }

    /// Destroys everything kept (the context is going away; all of it is
    /// idle: only finished submissions hand objects back).
    pub(crate) fn finish(&self, device: &ash::Device) {
        let lists = std::mem::take(&mut *self.lock());
        // SAFETY: ours and idle.
        unsafe {
            for f in lists.frames {
                device.destroy_command_pool(f.pool, None);
                device.destroy_fence(f.fence, None);
            }
            for s in lists.semaphores.into_iter().chain(lists.exportable) {
                device.destroy_semaphore(s, None);
            }
            for p in lists.descriptor_pools {
                device.destroy_descriptor_pool(p, None);
            }
        }
    }
}
