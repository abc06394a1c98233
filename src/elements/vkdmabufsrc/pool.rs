//! [`RingPool`]: the `GstBufferPool` of `vkdmabufsrc`. Its buffers are the
//! ring's exported images, made once when the pool starts (one buffer per
//! image: the image's dma-buf memories, plus a `VideoMeta` when downstream
//! supports it); GStreamer hands a buffer back to the pool when downstream
//! drops its last reference, and `acquire_buffer` waits for one. No
//! refcount is read, no sleep loop.

use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::subclass::prelude::*;
use gstreamer_video as gst_video;

/// What one buffer of the pool carries: the memories of one exported image
/// (one per distinct file) and its plane layout.
#[derive(Debug, Clone)]
pub struct SlotMemories {
    /// The image's memories (GStreamer dma-buf memories owning fd dups).
    pub memories: Vec<gst::Memory>,
    /// Plane offsets in the buffer.
    pub offsets: Vec<usize>,
    /// Plane strides.
    pub strides: Vec<i32>,
}

glib::wrapper! {
    /// See the module docs.
    pub struct RingPool(ObjectSubclass<imp::RingPool>) @extends gst::BufferPool, gst::Object;
}

impl RingPool {
    /// A pool over `slots` (one buffer each). `video_meta`: the format and
    /// size to describe in a `VideoMeta` on every buffer, or `None` when
    /// downstream does not support it (the layout is then GStreamer's
    /// default, checked by the caller).
    pub fn new(slots: Vec<SlotMemories>, video_meta: Option<(gst_video::VideoFormat, u32, u32)>) -> Self {
        let pool: Self = glib::Object::new();
        *pool.imp().inner.lock().unwrap_or_else(|p| p.into_inner()) = imp::Inner {
            slots,
            next: 0,
            video_meta,
            first_memories: Vec::new(),
        };
        pool
    }

    /// Which slot `buffer` (one of ours) carries, by its first memory.
    pub fn slot_of(&self, buffer: &gst::BufferRef) -> Option<usize> {
        if buffer.n_memory() == 0 {
            return None;
        }
        let first = buffer.peek_memory(0).as_ptr() as usize;
        let inner = self.imp().inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.first_memories.iter().position(|&m| m == first)
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct Inner {
        pub slots: Vec<super::SlotMemories>,
        /// The slot the next `alloc_buffer` takes.
        pub next: usize,
        pub video_meta: Option<(gst_video::VideoFormat, u32, u32)>,
        /// Address of each slot's first memory (identity only, never
        /// dereferenced).
        pub first_memories: Vec<usize>,
    }

    #[derive(Default)]
    pub struct RingPool {
        pub inner: Mutex<Inner>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for RingPool {
        const NAME: &'static str = "DmabufInteropVkRingPool";
        type Type = super::RingPool;
        type ParentType = gst::BufferPool;
    }

    impl ObjectImpl for RingPool {}
    impl GstObjectImpl for RingPool {}

    impl BufferPoolImpl for RingPool {
        fn options() -> &'static [&'static str] {
            &["GstBufferPoolOptionVideoMeta"]
        }

        fn start(&self) -> bool {
            // GStreamer preallocates the configured minimum here: every slot.
            {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner.next = 0;
                inner.first_memories.clear();
            }
            self.parent_start()
        }

        fn alloc_buffer(&self, _params: Option<&gst::BufferPoolAcquireParams>) -> Result<gst::Buffer, gst::FlowError> {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            // One buffer per image: the pool's max is the ring size.
            let slot = inner.slots.get(inner.next).cloned().ok_or(gst::FlowError::Error)?;
            let mut buffer = gst::Buffer::new();
            {
                let b = buffer.make_mut();
                for m in &slot.memories {
                    b.append_memory(m.clone());
                }
                if let Some((format, width, height)) = inner.video_meta {
                    gst_video::VideoMeta::add_full(
                        b,
                        gst_video::VideoFrameFlags::empty(),
                        format,
                        width,
                        height,
                        &slot.offsets,
                        &slot.strides,
                    )
                    .map_err(|_| gst::FlowError::Error)?;
                }
            }
            inner.first_memories.push(buffer.peek_memory(0).as_ptr() as usize);
            inner.next += 1;
            Ok(buffer)
        }
    }
}
