//! One-shot command submission and host-visible buffers: the small pieces
//! every operation of the adapter needs.

use ash::vk;

use super::context::VulkanContext;
use super::error::{VulkanError, call};

/// Records commands with `record`, submits them on the context's queue and
/// waits for the fence. Everything is destroyed before returning, on every
/// path.
pub(crate) fn submit_and_wait(
    ctx: &VulkanContext,
    record: impl FnOnce(vk::CommandBuffer) -> Result<(), VulkanError>,
) -> Result<(), VulkanError> {
    let device = ctx.device();
    let pool_info = vk::CommandPoolCreateInfo::default()
        .queue_family_index(ctx.queue_family())
        .flags(vk::CommandPoolCreateFlags::TRANSIENT);
    // SAFETY: valid device; the pool is destroyed by the guard below.
    let pool = unsafe { device.create_command_pool(&pool_info, None) }.map_err(call("vkCreateCommandPool"))?;
    let guard = PoolGuard {
        ctx,
        pool,
        fence: vk::Fence::null(),
    };
    let alloc = vk::CommandBufferAllocateInfo::default()
        .command_pool(pool)
        .level(vk::CommandBufferLevel::PRIMARY)
        .command_buffer_count(1);
    // SAFETY: the pool is valid; the buffer is freed with the pool.
    let cb = unsafe { device.allocate_command_buffers(&alloc) }.map_err(call("vkAllocateCommandBuffers"))?[0];
    let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
    // SAFETY: a fresh command buffer from our pool.
    unsafe { device.begin_command_buffer(cb, &begin) }.map_err(call("vkBeginCommandBuffer"))?;
    record(cb)?;
    // SAFETY: recording began above.
    unsafe { device.end_command_buffer(cb) }.map_err(call("vkEndCommandBuffer"))?;
    let mut guard = guard;
    // SAFETY: valid device; destroyed by the guard.
    guard.fence =
        unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }.map_err(call("vkCreateFence"))?;
    let buffers = [cb];
    let submit = [vk::SubmitInfo::default().command_buffers(&buffers)];
    {
        let queue = ctx.lock_queue();
        // SAFETY: the queue is externally synchronised by the lock; the
        // command buffer is fully recorded.
        unsafe { device.queue_submit(*queue, &submit, guard.fence) }.map_err(call("vkQueueSubmit"))?;
    }
    // SAFETY: the fence was submitted above.
    unsafe { device.wait_for_fences(&[guard.fence], true, u64::MAX) }.map_err(call("vkWaitForFences"))?;
    Ok(())
}

struct PoolGuard<'a> {
    ctx: &'a VulkanContext,
    pool: vk::CommandPool,
    fence: vk::Fence,
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        let device = self.ctx.device();
        // SAFETY: if the fence was submitted we waited on it (or the submit
        // failed, so nothing is pending); both handles are ours.
        unsafe {
            if self.fence != vk::Fence::null() {
                let _ = device.wait_for_fences(&[self.fence], true, u64::MAX);
                device.destroy_fence(self.fence, None);
            }
            device.destroy_command_pool(self.pool, None);
        }
    }
}

/// A host-visible, coherent buffer (staging for uploads and read-backs).
pub(crate) struct HostBuffer<'a> {
    ctx: &'a VulkanContext,
    pub buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    size: u64,
}

impl<'a> HostBuffer<'a> {
    pub fn new(ctx: &'a VulkanContext, size: u64, usage: vk::BufferUsageFlags) -> Result<Self, VulkanError> {
        let device = ctx.device();
        let info = vk::BufferCreateInfo::default()
            .size(size.max(1))
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        let mut this = Self {
            ctx,
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            size,
        };
        // SAFETY: valid device; destroyed in Drop.
        this.buffer = unsafe { device.create_buffer(&info, None) }.map_err(call("vkCreateBuffer"))?;
        // SAFETY: the buffer was just created.
        let req = unsafe { device.get_buffer_memory_requirements(this.buffer) };
        // SAFETY: plain query.
        let props = unsafe {
            ctx.instance()
                .get_physical_device_memory_properties(ctx.physical_device())
        };
        let wanted = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let type_index = (0..props.memory_type_count)
            .find(|&i| {
                req.memory_type_bits & (1 << i) != 0 && props.memory_types[i as usize].property_flags.contains(wanted)
            })
            .ok_or(VulkanError::NoMemoryType {
                fd_types: 0,
                image_types: req.memory_type_bits,
            })?;
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(type_index);
        // SAFETY: valid allocation info; freed in Drop.
        this.memory = unsafe { device.allocate_memory(&alloc, None) }.map_err(call("vkAllocateMemory"))?;
        // SAFETY: buffer and memory are fresh and compatible.
        unsafe { device.bind_buffer_memory(this.buffer, this.memory, 0) }.map_err(call("vkBindBufferMemory"))?;
        Ok(this)
    }

    /// Runs `f` on the buffer's bytes, mapped.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, VulkanError> {
        let device = self.ctx.device();
        let len = usize::try_from(self.size).map_err(|_| VulkanError::Usage("buffer larger than the address space"))?;
        // SAFETY: host-visible memory of at least `size` bytes, not mapped
        // elsewhere; unmapped before returning.
        unsafe {
            let ptr = device
                .map_memory(self.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                .map_err(call("vkMapMemory"))?;
            let result = f(std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len));
            device.unmap_memory(self.memory);
            Ok(result)
        }
    }
}

impl Drop for HostBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: our handles; no submission using them is pending (callers
        // wait on their fences before dropping).
        unsafe {
            self.ctx.device().destroy_buffer(self.buffer, None);
            self.ctx.device().free_memory(self.memory, None);
        }
    }
}
