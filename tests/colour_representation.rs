//! `wp_color_representation_v1` against a compositor that lists only some
//! (coefficients, range) pairs (tests/syncobj_compositor, on Smithay,
//! enforcing the protocol's errors): every YUV frame is told its matrix and
//! range where listed, converted to RGB where not, nothing unlisted is ever
//! sent, no RGB commit carries YCbCr coefficients, and the connection
//! survives. Runs on the bare host (memfd dma-bufs, no render node).
#![cfg(feature = "headless")]

mod common;
mod syncobj_compositor;

use std::time::Duration;

use common::write_planes;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::colour::{Alpha, ChromaSite, Colorimetry, Matrix, Range};
use dmabuf_interop::reference::pattern;
use dmabuf_interop::wayland::{ColourCorrection, Presenter, Target, Via};
use dmabuf_interop::{DmaBuf, DrmFourcc};
use syncobj_compositor::{ALPHA_PREMULTIPLIED_ELECTRICAL, ALPHA_STRAIGHT, TestCompositor};

const W: u32 = 64;
const H: u32 = 48;
// Protocol values: coefficients bt709 = 2, bt601 = 4; range full = 1, limited = 2.
const BT709_LIMITED: (u32, u32) = (2, 2);
const BT601_LIMITED: (u32, u32) = (4, 2);

/// (coefficients, range) and chroma location a commit carried.
type Told = (Option<(u32, u32)>, Option<u32>);
/// (coefficients, range) and alpha mode a commit carried.
type ToldAlpha = (Option<(u32, u32)>, Option<u32>);

fn frame(fourcc: DrmFourcc, n: u32, colorimetry: Colorimetry) -> DmaBuf {
    let buf = MemfdAllocator.allocate(fourcc, W, H, 64).unwrap();
    write_planes(&buf, &pattern::frame_planes(fourcc, W, H, n).unwrap());
    buf.with_colorimetry(colorimetry)
}

fn show(p: &mut Presenter, buf: &DmaBuf) -> Via {
    let via = p.present(buf, Box::new(())).expect("present").via();
    assert!(p.wait_frame(Duration::from_secs(5)).expect("dispatch"), "frame shown");
    via
}

#[test]
fn only_listed_pairs_are_sent_and_the_rest_is_converted() {
    let comp = TestCompositor::start_colour(W, H, &[BT709_LIMITED, BT601_LIMITED]);
    let mut p = Presenter::connect_to(
        comp.socket_path(),
        Target::Toplevel {
            title: "colour".into(),
            app_id: "dmabuf-interop-test".into(),
        },
    )
    .expect("connect");
    let offer = p.colour_offer().clone();
    assert!(offer.representation, "{offer:?}");
    assert_eq!(
        offer.pairs,
        vec![(Matrix::Bt709, Range::Limited), (Matrix::Bt601, Range::Limited)]
    );
    let left = Colorimetry {
        chroma_site: ChromaSite::Left,
        ..Colorimetry::BT709
    };
    let full601 = Colorimetry::BT601.with_matrix(Matrix::Bt601, Range::Full);
    // (frame, expected path, expected (coefficients, range) and chroma
    // location (type_0 = 1) on the compositor's side).
    let frames = [
        (
            frame(DrmFourcc::Nv12, 0, left),
            Via::LinuxDmabuf,
            Some(BT709_LIMITED),
            Some(1),
        ),
        (
            frame(DrmFourcc::Nv12, 1, Colorimetry::BT601),
            Via::LinuxDmabuf,
            Some(BT601_LIMITED),
            None,
        ),
        // Unlisted: converted into an XRGB8888 wl_shm buffer, nothing set.
        (frame(DrmFourcc::Nv12, 2, full601), Via::Converted, None, None),
        (
            frame(DrmFourcc::Xrgb8888, 3, Colorimetry::BT709),
            Via::LinuxDmabuf,
            None,
            None,
        ),
        (
            frame(DrmFourcc::Nv12, 4, Colorimetry::BT709),
            Via::LinuxDmabuf,
            Some(BT709_LIMITED),
            None,
        ),
    ];
    for (buf, via, _, _) in &frames {
        assert_eq!(show(&mut p, buf), *via, "{:?} {:?}", buf.fourcc(), buf.colorimetry());
    }
    p.roundtrip().expect("the connection survives");
    let log = comp.colour_log();
    assert!(log.errors.is_empty(), "protocol errors: {:?}", log.errors);
    let seen: Vec<Told> = log.commits.iter().map(|c| (c.1, c.2)).collect();
    let want: Vec<Told> = frames.iter().map(|f| (f.2, f.3)).collect();
    assert_eq!(seen, want, "{log:?}");
    let stats = p.stats();
    assert_eq!(
        (stats.colour_told, stats.colour_converted, stats.colour_uncorrected),
        (3, 1, 0),
        "{stats:?}"
    );

    // never: the unlisted pair goes as it is, untold, and is counted.
    p.set_colour_correction(ColourCorrection::Never);
    assert_eq!(show(&mut p, &frame(DrmFourcc::Nv12, 5, full601)), Via::LinuxDmabuf);
    assert_eq!(p.stats().colour_uncorrected, 1);
    // always: even a listed pair is converted.
    p.set_colour_correction(ColourCorrection::Always);
    assert_eq!(
        show(&mut p, &frame(DrmFourcc::Nv12, 6, Colorimetry::BT709)),
        Via::Converted
    );
    p.roundtrip().expect("the connection survives");
    let log = comp.colour_log();
    assert!(log.errors.is_empty(), "protocol errors: {:?}", log.errors);
    assert_eq!(log.commits[5].1, None, "{log:?}");
    assert_eq!(log.commits[6].1, None, "{log:?}");
}

/// `wp_color_management_v1` against the same compositor: a PQ BT.2020
/// stream with HDR10 metadata gets one parametric description carrying
/// exactly the stream's metadata (in the protocol's units), set from the
/// first frame on; an SDR BT.709 stream (bt1886, which this compositor does
/// not name) gets none, so the description is unset again.
#[test]
fn hdr10_metadata_reaches_the_compositor_as_the_caps_say() {
    use dmabuf_interop::colour::{Hdr10, Primaries, Transfer};
    let comp = TestCompositor::start_colour(W, H, &[BT709_LIMITED, (6, 2)]);
    let mut p = Presenter::connect_to(
        comp.socket_path(),
        Target::Toplevel {
            title: "hdr".into(),
            app_id: "dmabuf-interop-test".into(),
        },
    )
    .expect("connect");
    let offer = p.colour_management_offer().clone();
    assert!(offer.offered && offer.parametric && offer.mastering, "{offer:?}");
    // The caps of gst::colorimetry's HDR10 unit test.
    let hdr = Hdr10 {
        primaries: [(35400, 14600), (8500, 39850), (6550, 2300)],
        white_point: (15635, 16450),
        max_luminance: 10_000_000,
        min_luminance: 50,
        max_cll: 1000,
        max_fall: 400,
    };
    let pq = Colorimetry {
        transfer: Transfer::Pq,
        primaries: Primaries::Bt2020,
        hdr: Some(hdr),
        ..Colorimetry::BT2020
    };
    for n in 0..3 {
        show(&mut p, &frame(DrmFourcc::Nv12, n, pq));
    }
    show(&mut p, &frame(DrmFourcc::Nv12, 3, Colorimetry::BT709));
    p.roundtrip().expect("the connection survives");
    let log = comp.colour_log();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert_eq!(log.descriptions.len(), 1, "{log:?}");
    let d = &log.descriptions[0];
    // st2084_pq = 11, bt2020 = 6; chromaticities x 20 (0.00002 -> 1e-6).
    assert_eq!((d.tf, d.primaries), (Some(11), Some(6)));
    assert_eq!(
        d.mastering_primaries,
        Some([708000, 292000, 170000, 797000, 131000, 46000, 312700, 329000])
    );
    assert_eq!(d.mastering_luminance, Some((50, 1000)));
    assert_eq!((d.max_cll, d.max_fall), (Some(1000), Some(400)));
    assert_eq!(log.described, vec![Some(0), Some(0), Some(0), None], "{log:?}");
    let stats = p.stats();
    assert_eq!((stats.colour_described, stats.colour_description_failures), (3, 0));
}

/// Alpha: frames with straight alpha (GStreamer's raw video) are told
/// `straight` where the compositor lists it. Where it lists only
/// `premultiplied_electrical` (Weston 16, KWin 6.7), nothing is sent and
/// the frames are counted as untold. Frames without alpha, premultiplied
/// ones (the default) and YUV ones get a fresh object without the mode.
/// Nothing unlisted is ever sent, and no protocol error.
#[test]
fn straight_alpha_is_told_only_where_listed() {
    let straight = Colorimetry {
        alpha: Alpha::Straight,
        ..Colorimetry::BT709
    };
    let premultiplied = Colorimetry {
        alpha: Alpha::Premultiplied,
        ..Colorimetry::BT709
    };
    // (frame, its coefficients and range on the compositor's side, told
    // straight where the compositor lists it).
    let frames = [
        (frame(DrmFourcc::Argb8888, 0, straight), None, true),
        (frame(DrmFourcc::Argb8888, 1, straight), None, true),
        (frame(DrmFourcc::Xrgb8888, 2, straight), None, false),
        (frame(DrmFourcc::Nv12, 3, straight), Some(BT709_LIMITED), false),
        (frame(DrmFourcc::Argb8888, 4, premultiplied), None, false),
        (frame(DrmFourcc::Argb8888, 5, straight), None, true),
    ];
    for (modes, listed) in [
        (vec![ALPHA_PREMULTIPLIED_ELECTRICAL, ALPHA_STRAIGHT], true),
        (vec![ALPHA_PREMULTIPLIED_ELECTRICAL], false),
    ] {
        let comp = TestCompositor::start_colour_alpha(W, H, &[BT709_LIMITED], &modes);
        let mut p = Presenter::connect_to(
            comp.socket_path(),
            Target::Toplevel {
                title: "alpha".into(),
                app_id: "dmabuf-interop-test".into(),
            },
        )
        .expect("connect");
        assert_eq!(
            p.colour_offer().lists_straight_alpha(),
            listed,
            "{:?}",
            p.colour_offer()
        );
        for (buf, _, _) in &frames {
            show(&mut p, buf);
        }
        p.roundtrip().expect("the connection survives");
        let log = comp.colour_log();
        assert!(log.errors.is_empty(), "protocol errors ({modes:?}): {:?}", log.errors);
        let seen: Vec<ToldAlpha> = log.commits.iter().map(|c| (c.1, c.3)).collect();
        let want: Vec<ToldAlpha> = frames
            .iter()
            .map(|f| (f.1, (f.2 && listed).then_some(ALPHA_STRAIGHT)))
            .collect();
        // The compositor logs a surface's commits from its first colour
        // object on: from the first frame that needs one.
        let first = want.iter().position(|w| *w != (None, None)).unwrap();
        assert_eq!(seen, want[first..], "{modes:?}: {log:?}");
        let stats = p.stats();
        let straight_frames = frames.iter().filter(|f| f.2).count() as u64;
        let expected = if listed {
            (straight_frames, 0)
        } else {
            (0, straight_frames)
        };
        assert_eq!((stats.alpha_told, stats.alpha_untold), expected, "{modes:?}: {stats:?}");
    }
}
