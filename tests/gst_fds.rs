//! fd accounting for GStreamer buffers made from `DmaBuf`s. One test in this
//! binary so that nothing else opens fds while it counts.
#![cfg(feature = "gstreamer")]

mod common;

use common::*;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::gst as dgst;
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};
use gstreamer as gst;
use gstreamer_video as gst_video;

#[test]
fn buffers_hold_dups_and_release_them() {
    gst::init().expect("GStreamer (run scripts/setup)");
    let src = MemfdAllocator::new().allocate(DrmFourcc::Nv12, 64, 64, 64).unwrap();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Nv12, 64, 64)
        .build()
        .unwrap();
    // Warm up GStreamer's allocator registry before counting.
    drop(dgst::buffer_from_dmabuf(&src).unwrap());
    let before = open_fds();
    // 400 buffers: at most 800 fds at once, inside the usual soft limit of
    // 1024 open files (the VM stage's guest has it; this host has more).
    let buffers: Vec<gst::Buffer> = (0..400).map(|_| dgst::buffer_from_dmabuf(&src).unwrap()).collect();
    assert_eq!(open_fds(), before + 400, "one dup per buffer (one memory each)");
    let back: Vec<DmaBuf> = buffers
        .iter()
        .map(|b| dgst::dmabuf_from_buffer(b, &info, DrmModifier::Linear).unwrap())
        .collect();
    drop(buffers);
    assert_eq!(open_fds(), before + 400, "the DmaBufs keep their own dups");
    drop(back);
    assert_eq!(open_fds(), before);
    assert!(rustix::io::fcntl_getfd(src.planes()[0].fd()).is_ok());
}
