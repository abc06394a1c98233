//! [`RingPool`]: the `GstBufferPool` of `vkdmabufsrc`. Its buffers are the
//! ring's exported images, made once when the pool starts (one buffer per
//! image: the image's dma-buf memories, plus a `VideoMeta` when downstream
//! supports it); GStreamer hands a buffer back to the pool when downstream
//! drops its last reference, and `acquire_buffer` waits for one.
//!
//! One case needs more: GstBufferPool's release discards (frees) a buffer
//! whose memory another buffer still shares, as a shallow copy made
//! downstream does (`videorate` duplicating a frame, any
//! `gst_buffer_make_writable` of a buffer held twice). The pool then asks
//! `alloc_buffer` for a replacement past the ring. The replacement is the
//! discarded slot's image again, once no other buffer shares its memory
//! (the copy is gone: writing it earlier would change a frame still
//! travelling downstream), waited for at most [`REUSE_TIMEOUT`]; past
//! that, a typed error the element reports. The ring's memories are
//! READONLY, so a downstream writer gets a copy instead of changing a
//! frame (GstBuffer swaps the copy in and tags the buffer, whose release
//! then discards it too): its slot is ready for reuse at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::elements::lock;
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
        *lock(&pool.imp().inner) = imp::Inner {
            slots,
            next: 0,
            video_meta,
            first_memories: Vec::new(),
            buffers: Vec::new(),
            discarded: Vec::new(),
            error: None,
        };
        pool
    }

    /// Why the last `alloc_buffer` failed, if it did (the element posts it).
    pub fn take_error(&self) -> Option<String> {
        lock(&self.imp().inner).error.take()
    }

    /// Which slot `buffer` (one of ours) carries, by its first memory.
    pub fn slot_of(&self, buffer: &gst::BufferRef) -> Option<usize> {
        if buffer.n_memory() == 0 {
            return None;
        }
        let first = buffer.peek_memory(0).as_ptr() as usize;
        let inner = lock(&self.imp().inner);
        inner.first_memories.iter().position(|&m| m == first)
    }
}

/// How long a replacement for a discarded ring buffer waits for the copy
/// that shares its memory to go.
pub const REUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether no buffer shares `memory`. Each buffer holding a memory holds
/// an exclusive (share) lock on it; a share lock of our own is taken, and
/// the memory is "writable" (shared at most once, GStreamer's own test)
/// only if nobody else held one; then released at once. A write lock, the
/// direct test, cannot be used: the ring's memories are READONLY, which
/// refuses every write lock. (A reference without a buffer, e.g. a cache
/// downstream, is not a share, as for GstBufferPool itself.)
fn unshared(memory: &gst::Memory) -> bool {
    let object = memory.as_ptr() as *mut gst::ffi::GstMiniObject;
    // SAFETY: a valid memory we hold a reference to; an access-less
    // exclusive lock always succeeds and is released with the same flags.
    unsafe {
        if gst::ffi::gst_mini_object_lock(object, gst::ffi::GST_LOCK_FLAG_EXCLUSIVE) == glib::ffi::GFALSE {
            return false;
        }
        let alone = gst::ffi::gst_mini_object_is_writable(object) != glib::ffi::GFALSE;
        gst::ffi::gst_mini_object_unlock(object, gst::ffi::GST_LOCK_FLAG_EXCLUSIVE);
        alone
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
        /// Address of each slot's current buffer (identity only): a buffer
        /// whose memory a downstream writer replaced by a copy (the ring's
        /// memories are READONLY) comes back without the slot's memory.
        pub buffers: Vec<usize>,
        /// Slots whose buffer GstBufferPool discarded (see the module docs).
        pub discarded: Vec<usize>,
        /// Why the last allocation failed.
        pub error: Option<String>,
    }

    #[derive(Default)]
    pub struct RingPool {
        pub inner: Mutex<Inner>,
        pub flushing: AtomicBool,
    }

    impl RingPool {
        /// The buffer of slot `index`: its memories and VideoMeta.
        fn buffer_of(&self, inner: &Inner, index: usize) -> Result<gst::Buffer, gst::FlowError> {
            let slot = &inner.slots[index];
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
            Ok(buffer)
        }

        /// A discarded slot's buffer again, once no copy shares its memory.
        fn reuse_discarded(&self) -> Result<gst::Buffer, gst::FlowError> {
            let deadline = Instant::now() + REUSE_TIMEOUT;
            loop {
                let mut inner = lock(&self.inner);
                if let Some(at) = inner
                    .discarded
                    .iter()
                    .position(|&i| inner.slots[i].memories.iter().all(unshared))
                {
                    let index = inner.discarded.swap_remove(at);
                    let buffer = self.buffer_of(&inner, index)?;
                    inner.buffers[index] = buffer.as_ptr() as usize;
                    return Ok(buffer);
                }
                // GstBufferPool counts a discarded buffer out before it
                // calls `free_buffer`, so this allocation can come first:
                // an empty list waits for it too (bounded, as below).
                if inner.discarded.is_empty() && Instant::now() >= deadline {
                    inner.error = Some(format!(
                        "all {} ring buffers are in use and none was discarded within {REUSE_TIMEOUT:?}",
                        inner.slots.len()
                    ));
                    return Err(gst::FlowError::Error);
                }
                if Instant::now() >= deadline {
                    inner.error = Some(format!(
                        "a ring buffer's memory is still shared by a copy downstream after {REUSE_TIMEOUT:?} \
                         (an element keeps shallow copies of {} frames): raise ring-size, or copy the frames \
                         (videoconvert) before that element",
                        inner.discarded.len()
                    ));
                    return Err(gst::FlowError::Error);
                }
                drop(inner);
                if self.flushing.load(Ordering::Acquire) {
                    return Err(gst::FlowError::Flushing);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
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
                let mut inner = lock(&self.inner);
                inner.next = 0;
                inner.first_memories.clear();
                inner.buffers.clear();
                inner.discarded.clear();
                inner.error = None;
            }
            self.parent_start()
        }

        fn alloc_buffer(&self, _params: Option<&gst::BufferPoolAcquireParams>) -> Result<gst::Buffer, gst::FlowError> {
            let mut inner = lock(&self.inner);
            // One buffer per image: the pool's max is the ring size. Past
            // it, a slot whose buffer was discarded.
            if inner.next >= inner.slots.len() {
                drop(inner);
                return self.reuse_discarded();
            }
            let index = inner.next;
            let buffer = self.buffer_of(&inner, index)?;
            inner.first_memories.push(buffer.peek_memory(0).as_ptr() as usize);
            inner.buffers.push(buffer.as_ptr() as usize);
            inner.next += 1;
            Ok(buffer)
        }

        fn free_buffer(&self, buffer: gst::Buffer) {
            // Discarded while active (its memory shared by a copy, or
            // replaced by a writer's copy): the slot waits for reuse. At
            // stop, start() forgets them all. Known by the buffer itself,
            // whose memory may no longer be the slot's.
            let this = buffer.as_ptr() as usize;
            {
                let mut inner = lock(&self.inner);
                if let Some(index) = inner.buffers.iter().position(|&b| b == this)
                    && !inner.discarded.contains(&index)
                {
                    inner.discarded.push(index);
                    // Freed: its address may come back as another slot's
                    // buffer, which must not be taken for this one.
                    inner.buffers[index] = 0;
                }
            }
            self.parent_free_buffer(buffer);
        }

        fn flush_start(&self) {
            self.flushing.store(true, Ordering::Release);
            self.parent_flush_start();
        }

        fn flush_stop(&self) {
            self.flushing.store(false, Ordering::Release);
            self.parent_flush_stop();
        }
    }
}
