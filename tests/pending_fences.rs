//! The implicit-sync bridge against a fence that is really pending: vgem
//! (`modprobe vgem`, the VM stage) attaches an unsignalled fence to one of
//! its buffers (VGEM_FENCE_ATTACH) and signals it on request
//! (VGEM_FENCE_SIGNAL). A Vulkan submission that reads the buffer must wait
//! for that fence; what the CPU writes before the signal is what it reads.
//! The vgem ioctls are test tooling (no user needs them), so they live here,
//! their opcodes checked against the uapi headers' values.
#![cfg(feature = "vulkan")]

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::vgem::*;
use common::*;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::Allocator as _;
use dmabuf_interop::sync::SyncAccess;
use dmabuf_interop::sync::{self, Fence};
use dmabuf_interop::vulkan::{self, ash::vk};

use dmabuf_interop::reference::pattern;

#[test]
fn opcodes_match_the_uapi_headers() {
    // Values printed by a C program including <drm/drm.h>, <drm/vgem_drm.h>.
    assert_eq!(CREATE_DUMB, 0xC020_64B2);
    assert_eq!(PRIME_HANDLE_TO_FD, 0xC00C_642D);
    assert_eq!(VGEM_FENCE_ATTACH, 0xC010_6441);
    assert_eq!(VGEM_FENCE_SIGNAL, 0x4008_6442);
}

/// vgem's card node and a Vulkan context with SYNC_FD semaphores, or None
/// (outside the VM stage) after saying why.
fn setup() -> Option<(PathBuf, Arc<vulkan::VulkanContext>)> {
    let Some(card) = vgem_card() else {
        device_test("vgem (modprobe vgem)", false);
        return None;
    };
    let ctx = vulkan();
    device_test(
        "a Vulkan device with SYNC_FD semaphores (lavapipe where /dev/udmabuf exists)",
        ctx.capabilities().semaphore_sync_fd,
    )
    .then_some((card, ctx))
}

#[test]
fn a_read_waits_for_a_pending_vgem_fence() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((card, ctx)) = setup() else { return };
    let (w, h) = (64u32, 48u32);
    let vgem = VgemBuffer::new(&card, w, h);
    let buf = vgem.buf.clone();
    // A writer's fence, not yet signalled: readers must wait for it.
    let fence = vgem.attach_write_fence();
    let pending = sync::export_sync_file(buf.planes()[0].fd(), SyncAccess::Read).expect("export sync_file");
    assert!(!signalled(pending.as_fd()), "the vgem fence is pending");

    // Vulkan reads the buffer on another thread: it must block on the fence.
    let image = vulkan::import(
        &ctx,
        &buf,
        vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::SAMPLED,
    )
    .expect("import the vgem dma-buf");
    let reader = std::thread::spawn(move || image.download().expect("download"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!reader.is_finished(), "the read did not wait for the pending fence");

    // The "producer" finishes its frame, then signals.
    let want = pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, 5).unwrap();
    write_rows_unsynced(&buf, &want[0]);
    vgem.signal(fence);
    assert!(signalled(pending.as_fd()));
    let got = reader.join().expect("reader thread");
    assert_eq!(got, want, "the read saw the frame finished before the signal");
    assert_no_validation_messages(&ctx);
}

/// The CPU fallback for kernels without the sync_file ioctls (before 6.0)
/// and devices without SYNC_FD semaphores: poll on the dma-buf waits for a
/// pending writer's fence, within its bound, and returns once it signals.
#[test]
fn the_poll_fallback_waits_for_a_pending_fence_within_its_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(card) = vgem_card() else {
        device_test("vgem (modprobe vgem)", false);
        return;
    };
    let vgem = VgemBuffer::new(&card, 64, 48);
    let fd = vgem.buf.planes()[0].fd();
    let fence = vgem.attach_write_fence();
    assert_eq!(
        sync::wait_implicit(fd, SyncAccess::Read, Duration::from_millis(200)),
        Ok(false),
        "a reader waits for the pending writer"
    );
    assert_eq!(
        sync::wait_implicit(fd, SyncAccess::Write, Duration::from_millis(200)),
        Ok(false)
    );
    vgem.signal(fence);
    assert_eq!(
        sync::wait_implicit(fd, SyncAccess::Read, Duration::from_secs(5)),
        Ok(true)
    );
    assert_eq!(
        sync::wait_implicit(fd, SyncAccess::Write, Duration::from_secs(5)),
        Ok(true)
    );
}

#[test]
fn a_composite_waits_for_its_input_and_leaves_a_finished_output() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // The viewer's composite reads a frame (a vgem buffer whose producer
    // has not finished: pending fence) and writes an exported kernel
    // dma-buf. It must wait for the input's fence, and when it returns the
    // output holds the finished picture with nothing pending on it.
    //
    // Where the driver hands out real pending sync_files for a submission
    // (GPUs), the fence we attach to the output is also seen pending while
    // the submission waits, and signalled after. lavapipe cannot: its
    // vkGetSemaphoreFdKHR(SYNC_FD) returns only once the submission ran
    // (measured here: no pending fence on the output after 500 ms of
    // waiting), so on lavapipe that part is reported, not asserted.
    let Some((card, ctx)) = setup() else { return };
    let (w, h) = (64u32, 48u32);
    let vgem = VgemBuffer::new(&card, w, h);
    let video = vulkan::import(&ctx, &vgem.buf, vk::ImageUsageFlags::SAMPLED).expect("import the vgem dma-buf");
    let out = vulkan::Exporter::new(&ctx)
        .unwrap()
        .export(DrmFourcc::Xrgb8888, w, h, vk::ImageUsageFlags::STORAGE, &[])
        .expect("export");
    assert!(out.dmabuf().is_kernel_dmabuf());
    let out_fd = out.dmabuf().planes()[0].fd();
    let idle = sync::export_sync_file(out_fd, SyncAccess::Read).expect("export sync_file");
    assert!(signalled(idle.as_fd()), "nothing writes the output yet");
    let kernels = vulkan::Kernels::new(&ctx).unwrap();
    let overlay = dmabuf_interop::reference::overlay::Overlay {
        frame: 7,
        progress: None,
    };
    let fence = vgem.attach_write_fence();
    std::thread::scope(|scope| {
        let compositing = scope.spawn(|| kernels.composite(&video, &out, &overlay));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !compositing.is_finished(),
            "the composite did not wait for the frame's fence"
        );
        // Readers of the output wait for its writers: our submission.
        let ours = sync::export_sync_file(out_fd, SyncAccess::Read).expect("export sync_file");
        let pending_while_waiting = !signalled(ours.as_fd());
        println!(
            "our fence on the output while the submission waited: {}",
            if pending_while_waiting {
                "pending"
            } else {
                "none (the driver attaches it only once done)"
            }
        );
        write_rows_unsynced(
            &vgem.buf,
            &pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, 2).unwrap()[0],
        );
        vgem.signal(fence);
        compositing.join().expect("composite thread").expect("composite");
        assert!(signalled(ours.as_fd()), "our fence signalled with the submission");
    });
    let after = sync::export_sync_file(out_fd, SyncAccess::Read).expect("export sync_file");
    assert!(signalled(after.as_fd()), "nothing pending on the finished output");
    let got = &read_planes(out.dmabuf())[0];
    for y in 0..h {
        for x in 0..w {
            let at = (y * w + x) as usize * 4;
            let want = overlay.pixel(w, h, x, y).unwrap_or_else(|| pattern::rgb(w, h, 2, x, y));
            assert_eq!([got[at + 2], got[at + 1], got[at]], want, "pixel ({x}, {y})");
        }
    }
    assert_no_validation_messages(&ctx);
}

/// Whether a sync_file has signalled (poll for POLLIN without waiting).
fn signalled(sync_file: BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::new(&sync_file, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })).unwrap_or(0) == 1
}

/// vgem's card node and a DRM node with timeline syncobjs (virtio-gpu's in
/// the VM stage; vgem has no syncobjs), or None outside the VM stage.
/// The tests here run one at a time: the timeline test counts the
/// process's fds.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timeline_setup() -> Option<(PathBuf, Arc<sync::DrmDevice>)> {
    let Some(card) = vgem_card() else {
        device_test("vgem (modprobe vgem)", false);
        return None;
    };
    let device = sync::DrmDevice::find(None);
    device_test(
        "a DRM node with timeline syncobjs (virtio-gpu: scripts/vm-test --gpu)",
        device.is_ok(),
    )
    .then(|| (card, device.unwrap()))
}

#[test]
fn timeline_points_carry_a_pending_vgem_fence() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((card, device)) = timeline_setup() else { return };
    let fds_before = open_fds();
    {
        let vgem = VgemBuffer::new(&card, 16, 16);
        // A dma-buf whose writer has not finished: its implicit fence, as
        // an explicit sync_file, is pending.
        let id = vgem.attach_write_fence();
        let acquire = Fence::from_dmabuf(&vgem.buf).expect("export the implicit fence");
        let Fence::SyncFile(file) = &acquire else {
            panic!("a vgem dma-buf gives a sync_file, got {acquire:?}")
        };
        assert_eq!(acquire.is_signalled().unwrap(), Some(false));

        // The sync_file into timeline point 1: pending there too, and
        // exported back as a pending sync_file.
        let timeline = sync::Timeline::new(&device).expect("create a timeline");
        assert_eq!(timeline.signalled_point().unwrap(), 0);
        timeline.import_sync_file(1, file.as_fd()).expect("import into point 1");
        assert!(!timeline.is_signalled(1).unwrap());
        assert!(
            !timeline.wait(1, Duration::from_millis(200)).unwrap(),
            "point 1 waits for vgem"
        );
        let back = timeline.export_sync_file(1).expect("export point 1");
        assert!(!signalled(back.as_fd()));

        // Another process's view: the opaque fd imported on a second open
        // of the node (another DRM file), and a point moved across.
        let other = sync::DrmDevice::open(device.path()).expect("second open");
        let shared = sync::Timeline::import(&other, timeline.export().unwrap().as_fd()).expect("import the timeline");
        let elsewhere = sync::Timeline::new(&other).unwrap();
        elsewhere
            .import_point(
                7,
                &sync::TimelinePoint {
                    timeline: timeline.clone(),
                    point: 1,
                },
            )
            .expect("move point 1 to another device file");
        assert!(!elsewhere.is_signalled(7).unwrap());

        // The producer finishes: every view signals.
        vgem.signal(id);
        assert!(timeline.wait(1, Duration::from_secs(5)).unwrap());
        assert!(shared.is_signalled(1).unwrap());
        assert!(elsewhere.wait(7, Duration::from_secs(5)).unwrap());
        assert!(signalled(back.as_fd()));
        assert_eq!(acquire.is_signalled().unwrap(), Some(true));

        // CPU signals: a later point signals every earlier one; a point
        // nobody submitted has no fence to export and is not waited for
        // forever.
        timeline.signal(3).unwrap();
        assert_eq!(timeline.signalled_point().unwrap(), 3);
        assert!(matches!(
            timeline.export_sync_file(5),
            Err(sync::FenceError::NotSubmitted { point: 5 })
        ));
        assert!(!timeline.wait(5, Duration::from_millis(100)).unwrap());
        let point = Fence::Timeline(sync::TimelinePoint { timeline, point: 2 });
        assert_eq!(point.is_signalled().unwrap(), Some(true));

        // A memfd has no implicit fences: the value says so.
        let memfd = dmabuf_interop::alloc::MemfdAllocator::new()
            .allocate(DrmFourcc::Xrgb8888, 4, 4, 1)
            .unwrap();
        assert!(matches!(Fence::from_dmabuf(&memfd).unwrap(), Fence::Implicit));
    }
    assert_eq!(
        open_fds(),
        fds_before,
        "every syncobj, sync_file and device fd is closed"
    );
}
