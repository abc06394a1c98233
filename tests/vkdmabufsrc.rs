//! `vkdmabufsrc` in real GStreamer 1.22 pipelines on lavapipe: dma-buf
//! memory + VideoMeta with the pattern's exact pixels, the caps-feature
//! rules both ways, and the loadable plugin through gst-inspect/gst-launch.
#![cfg(all(feature = "gstreamer", feature = "vulkan"))]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;

use common::gst::{appsink_pipeline, init};
use common::*;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::gst::{self as dgst, Importer};
use dmabuf_interop::reference::pattern;
use gstreamer as gst;
use gstreamer::prelude::*;

/// Runs `description ! <importer>`, hands each frame to `check` (index,
/// frame) and keeps none of them, so the source's ring is never starved;
/// returns the pipeline's error, if any, and the number of frames.
fn run_with(
    description: &str,
    importer: &Importer,
    mut check: impl FnMut(usize, dgst::ImportedFrame),
) -> (Option<String>, usize) {
    run_driving(description, importer, |_, i, frame| check(i, frame))
}

/// [`run_with`] whose `check` also gets the pipeline, to act on it
/// (renegotiate, seek, send EOS) while frames flow.
fn run_driving(
    description: &str,
    importer: &Importer,
    mut check: impl FnMut(&gst::Pipeline, usize, dgst::ImportedFrame),
) -> (Option<String>, usize) {
    let pipeline = gst::Pipeline::new();
    // identity (passthrough) ends the description so it may end in caps.
    let bin = gst::parse::bin_from_description(&format!("{description} ! identity"), true).expect("description");
    importer.appsink().set_property("sync", false);
    pipeline.add(&bin).unwrap();
    pipeline.add(importer.appsink()).unwrap();
    bin.link(importer.appsink()).unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut frames = 0;
    let bus = pipeline.bus().unwrap();
    let mut error = None;
    loop {
        match importer.pull(gst::ClockTime::from_mseconds(200)) {
            Ok(Some(frame)) => {
                check(&pipeline, frames, frame);
                frames += 1;
                continue;
            }
            Ok(None) => {}
            Err(e) => panic!("import failed: {e}"),
        }
        // Errors first (is_eos is also true for an appsink that never
        // started); one filtered pop for both, as it discards what it skips.
        match bus
            .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
            .as_ref()
            .map(|m| m.view())
        {
            Some(gst::MessageView::Error(e)) => {
                error = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            Some(gst::MessageView::Eos(_)) if frames == 0 => break,
            _ => {}
        }
        if importer.appsink().is_eos() {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (error, frames)
}

fn run(description: &str, importer: &Importer) -> (Option<String>, usize) {
    run_with(description, importer, |_, _| {})
}

#[test]
fn pushes_dmabufs_with_the_pattern() {
    init();
    for (format, fourcc) in [
        ("BGRx", DrmFourcc::Xrgb8888),
        ("RGBA", DrmFourcc::Abgr8888),
        ("NV12", DrmFourcc::Nv12),
    ] {
        let importer = Importer::new().unwrap();
        let mut first_two = Vec::new();
        let (error, count) = run_with(
            &format!("vkdmabufsrc num-buffers=8 ! video/x-raw,format={format},width=250,height=76"),
            &importer,
            |i, frame| {
                assert!(!frame.dmabuf_caps, "mappable buffers flow under plain caps");
                let buffer = frame.sample().buffer().unwrap();
                assert!(dgst::is_dmabuf_buffer(buffer));
                let meta = buffer.meta::<gstreamer_video::VideoMeta>().expect("VideoMeta");
                let strides: Vec<i32> = frame.dmabuf.planes().iter().map(|p| p.stride() as i32).collect();
                assert_eq!(meta.stride(), &strides[..]);
                assert_eq!(buffer.offset(), i as u64);
                let got = read_planes(&frame.dmabuf);
                assert_eq!(
                    got,
                    pattern::frame_planes(fourcc, 250, 76, i as u32).unwrap(),
                    "{format} frame {i}"
                );
                if i < 2 {
                    first_two.push(got);
                }
            },
        );
        assert_eq!(error, None);
        assert_eq!(count, 8, "{format}");
        let stats = importer.stats();
        assert_eq!((stats.zero_copy, stats.copies), (8, 0), "{format}: {stats:?}");
        assert_ne!(first_two[0], first_two[1], "frames must move");
    }
}

/// videorate duplicates frames by shallow copies that share the ring
/// buffer's memory; GStreamer's pool then discards the ring buffer (its
/// memory is not exclusive) and asks for one past the ring. That ended the
/// stream with a bare flow error; now the discarded slot is used again once
/// the copy is gone, and no frame changes while a copy of it travels.
#[test]
fn shallow_copies_downstream_do_not_end_the_stream_or_change_frames() {
    init();
    let importer = Importer::new().unwrap();
    let (w, h) = (64u32, 48u32);
    let mut last = 0u64;
    let (error, count) = run_with(
        &format!(
            "vkdmabufsrc num-buffers=30 ! video/x-raw,format=BGRx,width={w},height={h},framerate=30/1 ! videorate \
             ! video/x-raw,framerate=60/1"
        ),
        &importer,
        |i, frame| {
            let pts = frame.sample().buffer().unwrap().pts().expect("pts");
            // videorate repeats the source frame nearest to the output's
            // time (30 fps in): one of the two around it.
            let near = pts.nseconds() * 30 / 1_000_000_000;
            let got = read_planes(&frame.dmabuf);
            let shown = (near.saturating_sub(1)..=near + 1)
                .find(|&n| got == pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, n as u32).unwrap());
            let Some(shown) = shown else {
                panic!(
                    "output frame {i} (pts {pts}) is none of source frames {}..={}",
                    near.saturating_sub(1),
                    near + 1
                )
            };
            assert!(shown >= last, "frame {i} went back from source frame {last} to {shown}");
            last = shown;
        },
    );
    assert_eq!(error, None);
    assert!(count >= 58, "30 frames at 30 fps as 60 fps: {count}");
}

/// Each frame redraws only where the pattern's box moved, so the ring's
/// images must never be written downstream: their memories are READONLY,
/// and a writer (here every other frame is mapped writable and filled, as
/// an in-place filter would) gets a copy. The copy carries the writer's
/// bytes; every other frame is still the source's dma-buf with the
/// pattern's exact pixels, through a ring of two (each image redrawn from
/// the frame before last), and the writer's slots come back into the ring.
#[test]
fn a_writer_downstream_gets_a_copy_and_the_ring_keeps_its_frames() {
    init();
    let importer = Importer::new().unwrap();
    let (w, h) = (96u32, 64u32);
    let frames = 24u32;
    let pipeline = gst::Pipeline::new();
    let bin = gst::parse::bin_from_description(
        &format!(
            "vkdmabufsrc num-buffers={frames} ring-size=2 ! video/x-raw,format=BGRx,width={w},height={h} \
             ! identity name=writer"
        ),
        true,
    )
    .unwrap();
    let writer = bin.by_name("writer").unwrap();
    writer
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
                && buffer.offset() % 2 == 1
            {
                let mut map = buffer.make_mut().map_writable().expect("a writable map (of a copy)");
                map.as_mut_slice().fill(0x5a);
            }
            gst::PadProbeReturn::Ok
        });
    importer.appsink().set_property("sync", false);
    pipeline.add(&bin).unwrap();
    pipeline.add(importer.appsink()).unwrap();
    bin.link(importer.appsink()).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut seen = 0;
    while seen < frames {
        let frame = importer
            .pull(gst::ClockTime::from_seconds(20))
            .expect("import")
            .unwrap_or_else(|| {
                let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
                panic!("frame {seen} did not come: {error:?}")
            });
        let buffer = frame.sample().buffer().unwrap();
        let n = buffer.offset() as u32;
        assert_eq!(n, seen, "frames in order");
        let got = read_planes(&frame.dmabuf);
        if n % 2 == 1 {
            assert!(!dgst::is_dmabuf_buffer(buffer), "frame {n}: the writer's copy");
            assert!(got[0].iter().all(|&b| b == 0x5a), "frame {n}: the writer's bytes");
        } else {
            assert!(dgst::is_dmabuf_buffer(buffer), "frame {n}: the source's dma-buf");
            assert_eq!(
                got,
                pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, n).unwrap(),
                "frame {n}"
            );
        }
        seen += 1;
    }
    let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    assert!(error.is_none(), "{error:?}");
    pipeline.set_state(gst::State::Null).unwrap();
}

/// NV12 caps state what the pattern kernels write (BT.709 limited, not
/// the BT.601 that GStreamer assumes at SD), and the frames carry it; a
/// downstream demand for another matrix is a negotiation error naming it.
#[test]
fn nv12_caps_state_bt709() {
    init();
    let importer = Importer::new().unwrap();
    let (error, frames) = run_with(
        "vkdmabufsrc num-buffers=2 ! video/x-raw,format=NV12,width=320,height=240",
        &importer,
        |_, frame| {
            let caps = frame.sample().caps().unwrap().to_string();
            assert!(caps.contains("colorimetry=(string)bt709"), "{caps}");
            assert_eq!(frame.dmabuf.colorimetry().matrix, dmabuf_interop::colour::Matrix::Bt709);
        },
    );
    assert_eq!((error, frames), (None, 2));
    let (error, frames) = run(
        "vkdmabufsrc num-buffers=2 ! video/x-raw,format=NV12,width=320,height=240,colorimetry=bt601",
        &Importer::new().unwrap(),
    );
    assert_eq!(frames, 0);
    assert!(error.as_deref().unwrap_or("").contains("bt709"), "{error:?}");
}

#[test]
fn mappable_buffers_work_with_videoconvert() {
    init();
    let importer = Importer::new().unwrap();
    let (error, frames) = run(
        "vkdmabufsrc num-buffers=10 ! video/x-raw,format=BGRx,width=320,height=240 ! videoconvert ! video/x-raw,format=I420",
        &importer,
    );
    assert_eq!(error, None);
    assert_eq!(frames, 10);
}

#[test]
fn non_mappable_buffers_get_dmabuf_caps_and_pass_through() {
    init();
    // A conversion that must map cannot follow: clear negotiation error.
    let importer = Importer::new().unwrap();
    let (error, frames) = run(
        "vkdmabufsrc num-buffers=10 non-mappable=true ! videoconvert ! video/x-raw,format=I420",
        &importer,
    );
    let error = error.unwrap_or_else(|| panic!("negotiation must fail, got {frames} frames"));
    assert!(error.contains("memory:DMABuf"), "{error}");
    assert_eq!(frames, 0);
    // Passthrough elements deliver every frame, and nothing maps them.
    // The capsfilters name no format: 1.22 writes `format=BGRx` under
    // memory:DMABuf, 1.24+ `format=DMA_DRM, drm-format=XR24`.
    for passthrough in ["queue", "identity", "videoconvert ! video/x-raw(memory:DMABuf)"] {
        let importer = Importer::new().unwrap();
        let (error, frames) = run_with(
            &format!(
                "vkdmabufsrc num-buffers=10 non-mappable=true ! video/x-raw(memory:DMABuf),width=64,height=48 ! {passthrough}"
            ),
            &importer,
            |i, frame| {
                assert!(frame.dmabuf_caps && frame.zero_copy, "{passthrough}");
                // The buffers really are not mappable for writing.
                assert!(!dgst::dmabuf_maps_writable(&frame.dmabuf).unwrap());
                // Reading our own memfd stand-in still shows the pattern.
                assert_eq!(
                    read_planes(&frame.dmabuf),
                    pattern::frame_planes(DrmFourcc::Xrgb8888, 64, 48, i as u32).unwrap()
                );
            },
        );
        assert_eq!(error, None, "{passthrough}");
        assert_eq!(frames, 10, "{passthrough}");
        assert_eq!(importer.stats().copies, 0);
    }
}

/// Checks one frame against the CPU reference: dma-buf memory, VideoMeta
/// equal to the `DmaBuf`'s strides, the pattern's exact pixels.
fn assert_pattern_frame(frame: &dgst::ImportedFrame, fourcc: DrmFourcc, n: u32) {
    let buffer = frame.sample().buffer().unwrap();
    assert!(dgst::is_dmabuf_buffer(buffer));
    let meta = buffer.meta::<gstreamer_video::VideoMeta>().expect("VideoMeta");
    assert_eq!(
        (meta.width(), meta.height()),
        (frame.dmabuf.width(), frame.dmabuf.height())
    );
    let strides: Vec<i32> = frame.dmabuf.planes().iter().map(|p| p.stride() as i32).collect();
    assert_eq!(meta.stride(), &strides[..]);
    let (w, h) = (frame.dmabuf.width(), frame.dmabuf.height());
    assert_eq!(
        read_planes(&frame.dmabuf),
        pattern::frame_planes(fourcc, w, h, n).unwrap(),
        "{fourcc:?} {w}x{h} frame {n}"
    );
}

#[test]
fn renegotiates_when_downstream_changes_size_and_format() {
    init();
    let importer = Importer::new().unwrap();
    let mut sizes = Vec::new();
    // NV12 is asked for once the first 320x240 frame arrived, not at a
    // fixed frame: under the VM stage's emulated CPU the ring's frames in
    // flight take longer to drain.
    let mut nv12_asked_at = None;
    let (error, frames) = run_driving(
        "vkdmabufsrc num-buffers=20 ! capsfilter name=filter caps-change-mode=delayed caps=video/x-raw,format=BGRx,width=160,height=120",
        &importer,
        |pipeline, i, frame| {
            let (w, h) = (frame.dmabuf.width(), frame.dmabuf.height());
            let fourcc = frame.dmabuf.fourcc();
            // Frames keep counting across the change (offset and pattern).
            // A buffer made under the old caps while the new ones travel
            // upstream can be refused (not-negotiated) and is lost (seen in
            // the VM stage, whose emulated CPU widens that window): at most
            // one per caps change, and the pattern always follows the offset.
            let offset = frame.sample().buffer().unwrap().offset();
            assert!(
                (i as u64..=i as u64 + 2).contains(&offset),
                "frame {i} has offset {offset}"
            );
            assert_pattern_frame(&frame, fourcc, offset as u32);
            sizes.push((fourcc, w, h));
            let filter = pipeline.by_name("filter").unwrap();
            if i == 4 {
                let caps = gst::Caps::from_str("video/x-raw,format=BGRx,width=320,height=240").unwrap();
                filter.set_property("caps", caps);
            } else if w == 320 && nv12_asked_at.is_none() {
                nv12_asked_at = Some(i);
                let caps = gst::Caps::from_str("video/x-raw,format=NV12,width=250,height=76").unwrap();
                filter.set_property("caps", caps);
            }
        },
    );
    assert_eq!(error, None);
    // num-buffers counts what the source made, lost ones included.
    assert!((18..=20).contains(&frames), "{frames} frames");
    // Frames already on their way when the caps changed keep the old size:
    // at most the ring (4 images) plus the one being made.
    let first_new = sizes.iter().position(|s| s.1 == 320).expect("no 320x240 frame");
    let asked = nv12_asked_at.expect("NV12 asked for");
    let first_nv12 = sizes
        .iter()
        .position(|s| s.0 == DrmFourcc::Nv12)
        .expect("no NV12 frame");
    assert!((5..=10).contains(&first_new), "{sizes:?}");
    assert!(first_nv12 > asked && first_nv12 <= asked + 6, "{sizes:?}");
    assert_eq!(sizes.last(), Some(&(DrmFourcc::Nv12, 250, 76)));
    assert!(sizes[..first_new].iter().all(|s| *s == (DrmFourcc::Xrgb8888, 160, 120)));
    assert_eq!(importer.stats().zero_copy, frames as u64);
}

#[test]
fn flushing_seek_restarts_the_pattern_at_the_position_and_eos_ends_the_stream() {
    init();
    let importer = Importer::new().unwrap();
    let mut after_seek = Vec::new();
    let mut seeked = false;
    let mut eos_sent = false;
    let (error, frames) = run_driving(
        "vkdmabufsrc ! video/x-raw,format=RGBx,width=96,height=64,framerate=30/1",
        &importer,
        |pipeline, i, frame| {
            let pts = frame.pts.expect("timestamped");
            if !seeked {
                assert_eq!(pts, gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / 30));
                if i == 3 {
                    pipeline
                        .seek_simple(
                            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                            gst::ClockTime::from_seconds(2),
                        )
                        .expect("seek");
                    seeked = true;
                }
                return;
            }
            // The first frame after the flush starts at 2 s = frame 60.
            let n = 60 + after_seek.len() as u32;
            assert_eq!(pts, gst::ClockTime::from_nseconds(n as u64 * 1_000_000_000 / 30));
            assert_pattern_frame(&frame, DrmFourcc::Xbgr8888, n);
            after_seek.push(n);
            if after_seek.len() == 5 && !eos_sent {
                assert!(pipeline.send_event(gst::event::Eos::new()));
                eos_sent = true;
            }
        },
    );
    assert_eq!(error, None);
    assert!(eos_sent, "only {frames} frames");
    // EOS ends the stream: only frames already queued (the ring holds 4)
    // and the one being made follow it.
    assert!((5..=10).contains(&after_seek.len()), "{after_seek:?}");
}

#[test]
fn live_mode_reports_its_latency_and_refuses_seeks() {
    init();
    let importer = Importer::new().unwrap();
    let mut last_pts = None;
    let mut checked = false;
    let (error, frames) = run_driving(
        "vkdmabufsrc name=src is-live=true num-buffers=6 ! video/x-raw,format=BGRx,width=64,height=48,framerate=60/1",
        &importer,
        |pipeline, i, frame| {
            let pts = frame.pts.expect("timestamped");
            if let Some(last) = last_pts {
                assert!(pts > last, "live timestamps must grow");
            }
            last_pts = Some(pts);
            assert_pattern_frame(&frame, DrmFourcc::Xrgb8888, i as u32);
            if i == 1 {
                let src = pipeline.by_name("src").unwrap();
                let mut q = gst::query::Latency::new();
                assert!(src.static_pad("src").unwrap().query(&mut q));
                let (live, min, max) = q.result();
                assert!(live);
                assert_eq!(min, gst::ClockTime::from_nseconds(16_666_666));
                assert_eq!(max, None);
                assert!(
                    pipeline
                        .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_seconds(1))
                        .is_err(),
                    "a live source does not seek"
                );
                checked = true;
            }
        },
    );
    assert_eq!(error, None);
    assert_eq!(frames, 6);
    assert!(checked);
}

fn plugin_dir() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf()
}

#[test]
fn loadable_plugin_works_with_the_gstreamer_tools() {
    let dir = plugin_dir();
    assert!(
        dir.join("libdmabuf_interop.so").exists(),
        "cdylib missing in {}",
        dir.display()
    );
    let inspect = Command::new("gst-inspect-1.0")
        .arg("vkdmabufsrc")
        .env("GST_PLUGIN_PATH", &dir)
        .output()
        .expect("gst-inspect-1.0 (gstreamer1.0-tools; run scripts/setup)");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    for property in ["non-mappable", "is-live", "ring-size", "num-buffers"] {
        assert!(text.contains(property), "gst-inspect lacks {property}:\n{text}");
    }
    let launch = Command::new("gst-launch-1.0")
        .args(["vkdmabufsrc", "num-buffers=30", "!", "fakesink"])
        .env("GST_PLUGIN_PATH", &dir)
        .output()
        .expect("gst-launch-1.0");
    let out = String::from_utf8_lossy(&launch.stdout);
    assert!(
        launch.status.success() && out.contains("Got EOS"),
        "{out}\n{}",
        String::from_utf8_lossy(&launch.stderr)
    );
}

/// Pulls every sample of `description ! appsink` (an appsink proposes no
/// allocation metas, so downstream does not read VideoMeta); returns them or
/// the pipeline's error.
fn pull_without_video_meta(description: &str) -> Result<Vec<gst::Sample>, String> {
    let (pipeline, sink) = appsink_pipeline(description);
    let _ = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let mut samples = Vec::new();
    let result = loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            samples.push(sample);
            continue;
        }
        // basesrc posts a flow error and then sends EOS: look for the error
        // first, and once more after EOS.
        let eos = sink.is_eos();
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            let gst::MessageView::Error(e) = msg.view() else {
                unreachable!()
            };
            break Err(format!("{} ({:?})", e.error(), e.debug()));
        }
        if eos {
            break Ok(samples);
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

#[test]
fn video_meta_only_where_downstream_reads_it() {
    // GStreamer's rule: a VideoMeta with driver strides only for a
    // downstream that said (ALLOCATION query) it reads VideoMeta; else the
    // layout must be GStreamer's default, or negotiation fails, clearly.
    // Which of the two happens depends on the driver's layout for the size;
    // either way a frame that flows is read right with the default layout.
    init();
    for (format, fourcc, w, h) in [
        ("BGRx", DrmFourcc::Xrgb8888, 320u32, 240u32),
        ("NV12", DrmFourcc::Nv12, 250, 76),
        ("BGRx", DrmFourcc::Xrgb8888, 250, 76),
    ] {
        let result = pull_without_video_meta(&format!(
            "vkdmabufsrc num-buffers=3 ! video/x-raw,format={format},width={w},height={h}"
        ));
        match result {
            Ok(samples) => {
                println!("{format} {w}x{h}: the driver's layout is GStreamer's default: no VideoMeta");
                assert_eq!(samples.len(), 3);
                let video_format = dgst::caps::video_format(fourcc).unwrap();
                let info = gstreamer_video::VideoInfo::builder(video_format, w, h).build().unwrap();
                for (i, sample) in samples.iter().enumerate() {
                    let buffer = sample.buffer().unwrap();
                    assert!(
                        buffer.meta::<gstreamer_video::VideoMeta>().is_none(),
                        "{format}: a VideoMeta for a downstream that does not read it"
                    );
                    // Read with the default layout, as such a downstream does.
                    let map = buffer.map_readable().unwrap();
                    let want = pattern::frame_planes(fourcc, w, h, i as u32).unwrap();
                    for (plane, packed) in want.iter().enumerate() {
                        let (offset, stride) = (info.offset()[plane], info.stride()[plane] as usize);
                        let row = packed.len() / plane_rows_of(fourcc, h, plane);
                        for (y, want_row) in packed.chunks_exact(row).enumerate() {
                            let start = offset + y * stride;
                            assert_eq!(
                                &map[start..start + row],
                                want_row,
                                "{format} frame {i} plane {plane} row {y}"
                            );
                        }
                    }
                }
            }
            Err(error) => {
                println!("{format} {w}x{h}: {error}");
                assert!(error.contains("GstVideoMeta"), "{error}");
            }
        }
    }
}

fn plane_rows_of(fourcc: DrmFourcc, height: u32, plane: usize) -> usize {
    dmabuf_interop::format::info(fourcc).unwrap().planes[plane].rows(height) as usize
}

#[test]
fn kernel_dmabuf_frames_go_without_a_cpu_wait() {
    // Where the ring's images are kernel dma-bufs and the device exports
    // SYNC_FD semaphores (the VM stage), the drawing's completion is
    // attached to the dma-buf as its implicit fence and the buffer is
    // pushed without waiting; a reader's DMA_BUF_IOCTL_SYNC (the mapping
    // here, a compositor or a sink's exported acquire fence elsewhere)
    // waits for it, so every frame still reads exactly.
    init();
    let importer = Importer::new().unwrap();
    let (mut kernel, mut fenced) = (false, 0u64);
    let (error, count) = run_driving(
        "vkdmabufsrc name=src num-buffers=8 ! video/x-raw,format=BGRx,width=64,height=48",
        &importer,
        |pipeline, i, frame| {
            kernel = frame.dmabuf.is_kernel_dmabuf();
            assert_eq!(
                read_planes(&frame.dmabuf),
                pattern::frame_planes(DrmFourcc::Xrgb8888, 64, 48, i as u32).unwrap(),
                "frame {i}"
            );
            fenced = pipeline.by_name("src").unwrap().property::<u64>("gpu-fenced-frames");
        },
    );
    assert_eq!(error, None);
    assert_eq!(count, 8);
    println!("kernel dma-bufs: {kernel}; frames pushed without a CPU wait: {fenced} of {count}");
    let gpu_fenced = kernel && common::vulkan().capabilities().semaphore_sync_fd;
    let udmabuf_stage = std::env::var_os(VM_STAGE_ENV).is_some()
        && std::env::var("DMABUF_INTEROP_ALLOCATOR").as_deref() == Ok("udmabuf");
    if udmabuf_stage {
        assert!(
            gpu_fenced,
            "the VM stage's udmabuf run has kernel dma-bufs and SYNC_FD semaphores"
        );
    }
    if gpu_fenced {
        assert_eq!(fenced, 8, "every frame went without a CPU wait");
    } else {
        assert_eq!(fenced, 0, "memfd stand-ins are waited for");
    }
}
