//! The Wayland adapter against a real headless Weston 14 (GL renderer on
//! llvmpipe): pixels in captures, the buffer cache, release discipline,
//! refusals, the shm fallback.
#![cfg(feature = "headless")]

mod common;

use std::time::Duration;

use common::*;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::wayland::headless::{Image, Renderer, Weston, WestonOptions};
use dmabuf_interop::wayland::{Presenter, Target, WaylandError};
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier, pattern};

pub fn weston(width: u32, height: u32) -> Weston {
    Weston::start(WestonOptions {
        width,
        height,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("these tests need Weston 14 (run scripts/setup): {e}"))
}

fn presenter(weston: &Weston) -> Presenter {
    Presenter::connect_to(
        &weston.socket_path(),
        Target::Toplevel {
            title: "dmabuf-interop test".into(),
            app_id: "dmabuf-interop.test".into(),
        },
    )
    .expect("connect to the headless weston")
}

fn pattern_buffer(fourcc: DrmFourcc, width: u32, height: u32, frame: u32) -> DmaBuf {
    let buf = MemfdAllocator::new().allocate(fourcc, width, height, 64).unwrap();
    write_planes(&buf, &pattern::frame_planes(fourcc, width, height, frame).unwrap());
    buf
}

/// Shows `buf`, waits until it is on screen, and captures the output.
fn show_and_capture(weston: &Weston, p: &mut Presenter, buf: &DmaBuf) -> Image {
    p.present(buf, Box::new(())).expect("present");
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap(), "no frame callback");
    weston.capture().expect("capture")
}

/// Largest per-channel difference between the capture and the pattern over
/// a grid of sample points away from the pattern's edges.
/// What a compositor shows for an RGB colour that went through our BT.709
/// YUV encoding: Weston 14 decodes YUV dma-bufs with BT.601 limited-range
/// coefficients (no colour-representation protocol says otherwise).
fn through_yuv(c: [u8; 3]) -> [u8; 3] {
    let [y, u, v] = pattern::rgb_to_yuv(c);
    let (y, u, v) = (1.164 * (f64::from(y) - 16.0), f64::from(u) - 128.0, f64::from(v) - 128.0);
    let ch = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    [ch(y + 1.596 * v), ch(y - 0.392 * u - 0.813 * v), ch(y + 2.017 * u)]
}

fn pattern_error(image: &Image, width: u32, height: u32, frame: u32, yuv: bool) -> (u32, usize) {
    let (mut worst, mut points) = (0u32, 0);
    for gy in 0..12 {
        for gx in 0..16 {
            let x = width * (2 * gx + 1) / 32;
            let y = height * (2 * gy + 1) / 24;
            let want = pattern::rgb(width, height, frame, x, y);
            // Skip points next to a colour edge (box, bars, ramp) where
            // chroma subsampling may blend neighbours.
            let flat = [(0i32, 0i32), (-2, 0), (2, 0), (0, -2), (0, 2)].iter().all(|&(dx, dy)| {
                let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                nx >= 0
                    && ny >= 0
                    && (nx as u32) < width
                    && (ny as u32) < height
                    && pattern::rgb(width, height, frame, nx as u32, ny as u32) == want
            });
            if !flat {
                continue;
            }
            let want = if yuv { through_yuv(want) } else { want };
            let got = image.pixel(x, y).unwrap();
            for c in 0..3 {
                worst = worst.max((i32::from(got[c]) - i32::from(want[c])).unsigned_abs());
            }
            points += 1;
        }
    }
    (worst, points)
}

#[test]
fn dmabufs_show_the_right_pixels() {
    for (fourcc, tolerance) in [
        (DrmFourcc::Xrgb8888, 0),
        (DrmFourcc::Argb8888, 0),
        (DrmFourcc::Nv12, 2),
    ] {
        let (w, h) = (320, 240);
        let weston = weston(w, h);
        let mut p = presenter(&weston);
        assert_eq!(p.formats().dmabuf_version, 3, "{:?}", p.formats());
        let buf = pattern_buffer(fourcc, w, h, 7);
        let image = show_and_capture(&weston, &mut p, &buf);
        let (worst, points) = pattern_error(&image, w, h, 7, fourcc == DrmFourcc::Nv12);
        println!("{fourcc:?}: worst channel error {worst} over {points} points");
        assert!(points > 100);
        assert!(worst <= tolerance, "{fourcc:?}: worst channel error {worst}");
        let stats = p.stats();
        assert_eq!((stats.zero_copy, stats.copies), (1, 0));
    }
}
