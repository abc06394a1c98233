//! Implementation of [`super::DmaBufPoolAllocator`].

use std::os::fd::IntoRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::glib::translate::*;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_allocators as gst_allocators;
use gstreamer_allocators::subclass::prelude::*;

use crate::Report;
use crate::alloc::{Allocator, AllocatorKind};

static CAT: std::sync::LazyLock<gst::DebugCategory> = std::sync::LazyLock::new(|| {
    gst::DebugCategory::new(
        "dmabufinteropalloc",
        gst::DebugColorFlags::empty(),
        Some("dmabuf-interop dma-buf allocator"),
    )
});

#[derive(Default)]
pub struct DmaBufPoolAllocator {
    backend: OnceLock<Box<dyn Allocator>>,
    allocations: AtomicU64,
}

impl DmaBufPoolAllocator {
    pub(super) fn set_backend(&self, backend: Box<dyn Allocator>) {
        // A second call keeps the first back end: allocators do not switch.
        let _ = self.backend.set(backend);
    }

    pub(super) fn backend_kind(&self) -> Option<AllocatorKind> {
        self.backend.get().map(|b| b.kind())
    }

    pub(super) fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    fn backend(&self) -> Option<&dyn Allocator> {
        if self.backend.get().is_none() {
            // Made through g_object_new (no back end given): the best one.
            match crate::alloc::best_available() {
                Ok(b) => self.set_backend(b),
                Err(e) => {
                    gst::error!(CAT, imp = self, "no allocator back end: {}", Report(&e));
                    return None;
                }
            }
        }
        self.backend.get().map(|b| b.as_ref())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for DmaBufPoolAllocator {
    const NAME: &'static str = "DmabufInteropAllocator";
    type Type = super::DmaBufPoolAllocator;
    type ParentType = gst_allocators::DmaBufAllocator;
}

impl ObjectImpl for DmaBufPoolAllocator {}
impl GstObjectImpl for DmaBufPoolAllocator {}

// SAFETY: `alloc` returns either null or a memory made by this allocator
// (gst_dmabuf_allocator_alloc_with_flags on our own instance), as GstAllocator requires.
unsafe impl AllocatorImpl for DmaBufPoolAllocator {
    unsafe fn alloc(&self, size: usize, params: &gst::AllocationParams) -> *mut gst::ffi::GstMemory {
        let Some(backend) = self.backend() else {
            return std::ptr::null_mut();
        };
        let Some(maxsize) = size
            .checked_add(params.prefix())
            .and_then(|s| s.checked_add(params.padding()))
        else {
            gst::error!(CAT, imp = self, "allocation size overflows: {size} + prefix + padding");
            return std::ptr::null_mut();
        };
        let fd = match backend.allocate_bytes(maxsize as u64) {
            Ok(fd) => fd,
            Err(e) => {
                gst::error!(CAT, imp = self, "cannot allocate {maxsize} bytes: {}", Report(&e));
                return std::ptr::null_mut();
            }
        };
        let obj = self.obj();
        // SAFETY: `obj` is a GstDmaBufAllocator (our parent type), so
        // gst_dmabuf_allocator_alloc makes a memory whose allocator is us; the
        // fd is handed over (closed by the fd allocator's free).
        unsafe {
            // KEEP_MAPPED: a CPU producer (videotestsrc, videoconvert) maps
            // every frame; without it each unmap is a munmap and the next map
            // faults in every page again (measured: ~5 ms per 1080p frame).
            let memory = gst_allocators::ffi::gst_dmabuf_allocator_alloc_with_flags(
                obj.upcast_ref::<gst::Allocator>().to_glib_none().0,
                fd.into_raw_fd(),
                maxsize,
                gst_allocators::ffi::GST_FD_MEMORY_FLAG_KEEP_MAPPED,
            );
            if memory.is_null() {
                return memory;
            }
            gst::ffi::gst_memory_resize(memory, params.prefix() as isize, size);
            self.allocations.fetch_add(1, Ordering::Relaxed);
            gst::trace!(CAT, imp = self, "allocated {size} bytes");
            memory
        }
    }
}

impl FdAllocatorImpl for DmaBufPoolAllocator {}
impl DmaBufAllocatorImpl for DmaBufPoolAllocator {}
