//! Reuse imported images while their source lives.

use std::collections::HashMap;
use std::sync::Arc;

use ash::vk;

use super::context::VulkanContext;
use super::error::VulkanError;
use super::image::VulkanImage;
use super::import::import;
use crate::dmabuf::{BufferId, DmaBuf, WeakDmaBuf};

/// A cache of imported images keyed by [`DmaBuf::id`] (file identities,
/// never fd numbers). An entry lives while its source `DmaBuf` (any clone)
/// does; entries whose source died are dropped on the next
/// [`get_or_import`](Self::get_or_import) or [`purge`](Self::purge), which
/// destroys their Vulkan objects (when nobody else holds the image).
#[derive(Debug)]
pub struct ImportCache {
    ctx: Arc<VulkanContext>,
    usage: vk::ImageUsageFlags,
    entries: HashMap<BufferId, (WeakDmaBuf, Arc<VulkanImage>)>,
    hits: u64,
    misses: u64,
}

impl ImportCache {
    /// A cache importing with `usage`.
    pub fn new(ctx: &Arc<VulkanContext>, usage: vk::ImageUsageFlags) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            usage,
            entries: HashMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The image for `dmabuf`, imported on first sight.
    pub fn get_or_import(&mut self, dmabuf: &DmaBuf) -> Result<Arc<VulkanImage>, VulkanError> {
        self.purge();
        let id = dmabuf.id();
        if let Some((_, image)) = self.entries.get(&id) {
            self.hits += 1;
            return Ok(Arc::clone(image));
        }
        self.misses += 1;
        let image = Arc::new(import(&self.ctx, dmabuf, self.usage)?);
        self.entries.insert(id, (dmabuf.downgrade(), Arc::clone(&image)));
        Ok(image)
    }

    /// Drops entries whose source buffer is gone; returns how many.
    pub fn purge(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (weak, _)| weak.is_alive());
        before - self.entries.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
