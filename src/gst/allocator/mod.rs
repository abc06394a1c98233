//! `DmaBufPoolAllocator`: a `GstDmaBufAllocator` that can allocate.
//!
//! GStreamer's stock dmabuf allocator only wraps fds it is given; its `alloc`
//! fails. This subclass allocates from one of the crate's back ends
//! ([`crate::alloc`]) so that a buffer pool proposed to upstream elements
//! (videotestsrc, decoders, videoconvert) makes them write straight into
//! dma-bufs.

mod imp;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::ObjectSubclassIsExt;
use gstreamer_allocators as gst_allocators;

use crate::alloc::{AllocError, Allocator};

glib::wrapper! {
    /// A `GstDmaBufAllocator` whose memory comes from a [`crate::alloc`] back
    /// end. Memories own their fds (closed when freed).
    pub struct DmaBufPoolAllocator(ObjectSubclass<imp::DmaBufPoolAllocator>)
        @extends gst_allocators::DmaBufAllocator, gst_allocators::FdAllocator, gst::Allocator, gst::Object;
}

impl DmaBufPoolAllocator {
    /// An allocator over [`crate::alloc::best_available`].
    pub fn new() -> Result<Self, AllocError> {
        Ok(Self::with_backend(crate::alloc::best_available()?))
    }

    /// An allocator over `backend`.
    pub fn with_backend(backend: Box<dyn Allocator>) -> Self {
        let obj: Self = glib::Object::new();
        obj.imp().set_backend(backend);
        obj
    }

    /// The back end's name (`memfd`, `udmabuf`, ...).
    pub fn backend_name(&self) -> &'static str {
        self.imp().backend_kind().map_or("none", |k| k.name())
    }

    /// Memories allocated so far.
    pub fn allocations(&self) -> u64 {
        self.imp().allocations()
    }

    /// Whether `memory` was allocated by an allocator of this type.
    pub fn owns(memory: &gst::MemoryRef) -> bool {
        memory.allocator().is_some_and(|a| a.is::<DmaBufPoolAllocator>())
    }
}

// Send and Sync come from glib's wrapper, derived from the implementation
// struct: a field that is not thread-safe fails to build (no hand-written
// impl that could hide it).
