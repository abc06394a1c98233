//! The copy path: [`VulkanImage::download`] and [`VulkanImage::upload`] through a
//! host-visible staging buffer ([`HostBuffer`]), with the plane sizes and copy
//! regions they use.

use ash::vk;

use super::commands::submit_synced;
use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::{image_extent, plane_aspect};
use super::image::VulkanImage;
use crate::format;
use crate::sync::SyncAccess;

impl VulkanImage {
    /// Plane extents (width, height) in texels of each plane.
    fn plane_formats(&self) -> &'static [format::PlaneFormat] {
        format::info(self.format.fourcc).map_or(&[], |i| i.planes)
    }

    fn plane_extents(&self) -> Vec<(u32, u32)> {
        self.plane_formats()
            .iter()
            .map(|p| (p.samples(self.width), p.rows(self.height)))
            .collect()
    }

    /// One copy region per plane (its aspect and extent) with the
    /// buffer offsets `offsets`, rows tightly packed.
    pub(super) fn copy_regions(&self, offsets: &[u64]) -> Vec<vk::BufferImageCopy> {
        let multi = self.format.plane_formats.len() > 1;
        self.plane_extents()
            .into_iter()
            .enumerate()
            .map(|(i, (w, h))| {
                let aspect = if multi {
                    plane_aspect(i)
                } else {
                    vk::ImageAspectFlags::COLOR
                };
                // One-plane images are addressed in pixels; packed 4:2:2 ones
                // are copied whole (padded) because their 2x1 blocks must not
                // be split.
                let (w, h) = if self.format.plane_formats.len() == 1 {
                    image_extent(self.format.fourcc, self.width, self.height)
                } else {
                    (w, h)
                };
                vk::BufferImageCopy::default()
                    .buffer_offset(offsets[i])
                    .image_subresource(vk::ImageSubresourceLayers::default().aspect_mask(aspect).layer_count(1))
                    .image_extent(vk::Extent3D {
                        width: w,
                        height: h,
                        depth: 1,
                    })
            })
            .collect()
    }

    /// Tightly packed size of each plane (rows of minimum row bytes).
    fn packed_plane_sizes(&self) -> Vec<usize> {
        self.plane_formats()
            .iter()
            .map(|p| {
                let row = p.min_row_bytes(self.width).unwrap_or(0) as usize;
                row * p.rows(self.height) as usize
            })
            .collect()
    }

    /// Copies the image into host memory through the GPU (acquire, copy to a
    /// staging buffer, release, wait) and returns each plane tightly packed
    /// (rows of the plane's minimum row size). This is the copy path: tests
    /// use it to see what Vulkan sees.
    pub fn download(&self) -> Result<Vec<Vec<u8>>, VulkanError> {
        if !self.usage.contains(vk::ImageUsageFlags::TRANSFER_SRC) {
            return Err(VulkanError::Usage(
                "download needs an image created with TRANSFER_SRC usage",
            ));
        }
        let sizes = self.packed_plane_sizes();
        let (offsets, total) = staging_offsets(&sizes);
        let staging = HostBuffer::new(&self.ctx, total, vk::BufferUsageFlags::TRANSFER_DST)?;
        let regions = self.copy_regions(&offsets);
        let submission = submit_synced(
            &self.ctx,
            &self.implicit_sync(SyncAccess::Read),
            &[],
            Vec::new(),
            |cb| {
                self.record_acquire(
                    cb,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_READ,
                );
                // SAFETY: recording; image in TRANSFER_SRC_OPTIMAL after the
                // acquire; regions lie inside image and buffer.
                unsafe {
                    self.ctx.device().cmd_copy_image_to_buffer(
                        cb,
                        self.image,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        staging.buffer,
                        &regions,
                    )
                };
                self.record_release(
                    cb,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::empty(),
                );
                let to_host = vk::MemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                    .dst_access_mask(vk::AccessFlags::HOST_READ);
                // SAFETY: recording.
                unsafe {
                    self.ctx.device().cmd_pipeline_barrier(
                        cb,
                        vk::PipelineStageFlags::TRANSFER,
                        vk::PipelineStageFlags::HOST,
                        vk::DependencyFlags::empty(),
                        &[to_host],
                        &[],
                        &[],
                    )
                };
                Ok(())
            },
        )?;
        self.acquire_submitted();
        let staging = wait_keeping(submission, staging)?;
        staging.with_bytes(|bytes| {
            offsets
                .iter()
                .zip(&sizes)
                .map(|(&o, &s)| bytes[o as usize..o as usize + s].to_vec())
                .collect()
        })
    }

    /// Copies tightly packed planes into the image through a staging buffer
    /// (`vkCmdCopyBufferToImage`): the copy path that zero-copy import
    /// replaces, kept for comparison and for sources that are not dma-bufs.
    pub fn upload(&self, planes: &[&[u8]]) -> Result<(), VulkanError> {
        if !self.usage.contains(vk::ImageUsageFlags::TRANSFER_DST) {
            return Err(VulkanError::Usage(
                "upload needs an image created with TRANSFER_DST usage",
            ));
        }
        let sizes = self.packed_plane_sizes();
        if planes.len() != sizes.len() || planes.iter().zip(&sizes).any(|(p, &s)| p.len() != s) {
            return Err(VulkanError::Usage(
                "upload: plane count or sizes do not match the image",
            ));
        }
        let (offsets, total) = staging_offsets(&sizes);
        let staging = HostBuffer::new(&self.ctx, total, vk::BufferUsageFlags::TRANSFER_SRC)?;
        staging.with_bytes(|bytes| {
            for (p, &at) in planes.iter().zip(&offsets) {
                bytes[at as usize..at as usize + p.len()].copy_from_slice(p);
            }
        })?;
        let regions = self.copy_regions(&offsets);
        let submission = submit_synced(
            &self.ctx,
            &self.implicit_sync(SyncAccess::Write),
            &[],
            Vec::new(),
            |cb| {
                self.record_acquire(
                    cb,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                );
                // SAFETY: recording; image in TRANSFER_DST_OPTIMAL.
                unsafe {
                    self.ctx.device().cmd_copy_buffer_to_image(
                        cb,
                        staging.buffer,
                        self.image,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        &regions,
                    )
                };
                self.record_release(
                    cb,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                );
                Ok(())
            },
        )?;
        self.acquire_submitted();
        wait_keeping(submission, staging).map(drop)
    }
}

/// Waits for `submission`, then hands `staging` back. If the GPU did not
/// finish within the bound, the staging buffer it copies from or into is
/// leaked rather than freed under it.
fn wait_keeping<T>(submission: super::Submission, staging: T) -> Result<T, VulkanError> {
    match submission.wait() {
        Ok(()) => Ok(staging),
        Err(e) => {
            if matches!(e, VulkanError::Timeout { .. }) {
                std::mem::forget(staging);
            }
            Err(e)
        }
    }
}

/// Offsets of packed planes in a staging buffer, each aligned to 16 bytes
/// (copies need offsets that are multiples of the texel size), and the
/// buffer size.
fn staging_offsets(sizes: &[usize]) -> (Vec<u64>, u64) {
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut at = 0u64;
    for &size in sizes {
        offsets.push(at);
        at = (at + size as u64).next_multiple_of(16);
    }
    (offsets, at)
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
