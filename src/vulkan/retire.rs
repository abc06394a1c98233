//! Deferred destruction: objects a caller's submissions may still use are
//! destroyed only once the context's queue has finished everything
//! submitted before they were dropped.
//!
//! On drop, such an object submits an empty batch with a fence to the
//! context's queue: a fence signal operation's first synchronisation scope
//! holds every command submitted earlier to that queue (Vulkan spec,
//! "Fence Signaling"), so once the fence signals nothing submitted before
//! the drop can still touch the object (VUID-vkDestroyImage-image-01000,
//! VUID-vkDestroyImageView-imageView-01026,
//! VUID-vkDestroySampler-sampler-01082, VUID-vkFreeMemory-memory-00677).
//! Pending destructions are collected without blocking on later submits,
//! retirements and [`VulkanContext::collect_retired`], and waited for when
//! the context goes away.
//!
//! [`VulkanContext::collect_retired`]: super::VulkanContext::collect_retired

use std::sync::Mutex;

use ash::vk;

/// Destroys a group of Vulkan objects.
pub(crate) type Destroy = Box<dyn FnOnce(&ash::Device) + Send>;

/// Destructions waiting for their fence.
#[derive(Default)]
pub(crate) struct Retired {
    pending: Mutex<Vec<(vk::Fence, Destroy)>>,
}

impl Retired {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(vk::Fence, Destroy)>> {
        // Entries are pushed and removed whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Destructions still waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Runs the destructions whose fence has signalled (never blocks);
    /// returns how many are still waiting.
    pub(crate) fn collect(&self, device: &ash::Device) -> usize {
        let ready: Vec<(vk::Fence, Destroy)> = {
            let mut pending = self.lock();
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut *pending)
                .into_iter()
                // SAFETY: our fence, alive until destroyed below. An error
                // (device lost) means nothing will run any more: ready.
                .partition(|(fence, _)| unsafe { device.get_fence_status(*fence) }.unwrap_or(true));
            *pending = waiting;
            ready
        };
        for (fence, destroy) in ready {
            destroy(device);
            // SAFETY: signalled (or the device is lost), so not in use.
            unsafe { device.destroy_fence(fence, None) };
        }
        self.len()
    }

    /// Destroys with `destroy` once `queue` has finished everything
    /// submitted so far.
    pub(crate) fn defer(&self, device: &ash::Device, queue: &Mutex<vk::Queue>, destroy: Destroy) {
        self.collect(device);
        // SAFETY: valid device; the fence is destroyed after it signals.
        let fence = match unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) } {
            Ok(fence) => fence,
            Err(_) => return Self::after_idle(device, destroy),
        };
        let submitted = {
            let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: an empty batch: it only signals `fence` after all
            // earlier submissions to this (externally synchronised) queue.
            unsafe { device.queue_submit(*queue, &[], fence) }
        };
        match submitted {
            Ok(()) => self.lock().push((fence, destroy)),
            Err(_) => {
                // SAFETY: never submitted.
                unsafe { device.destroy_fence(fence, None) };
                Self::after_idle(device, destroy);
            }
        }
    }

    /// Destroys with `destroy` once `fence` (already submitted, now ours)
    /// has signalled; the fence is destroyed with it.
    pub(crate) fn after_fence(&self, fence: vk::Fence, destroy: Destroy) {
        self.lock().push((fence, destroy));
    }

    /// The fallback when no fence can be submitted (out of memory, device
    /// lost): wait for the whole device, then destroy.
    fn after_idle(device: &ash::Device, destroy: Destroy) {
        // SAFETY: valid device; an error here means it is lost and runs
        // nothing any more.
        let _ = unsafe { device.device_wait_idle() };
        destroy(device);
    }

    /// Waits for every pending fence (each at most [`GPU_TIMEOUT`]) and
    /// destroys everything (the context is going away). What a fence that
    /// never signalled still guards is leaked, not destroyed under the
    /// GPU; the count is returned.
    ///
    /// [`GPU_TIMEOUT`]: super::GPU_TIMEOUT
    pub(crate) fn finish(&self, device: &ash::Device) -> usize {
        let mut leaked = 0;
        for (fence, destroy) in std::mem::take(&mut *self.lock()) {
            let bound = super::GPU_TIMEOUT.as_nanos() as u64;
            // SAFETY: our fence; a lost device returns an error at once.
            match unsafe { device.wait_for_fences(&[fence], true, bound) } {
                Err(vk::Result::TIMEOUT) => {
                    std::mem::forget(destroy);
                    leaked += 1;
                }
                _ => {
                    destroy(device);
                    // SAFETY: signalled or the device is lost.
                    unsafe { device.destroy_fence(fence, None) };
                }
            }
        }
        leaked
    }
}
