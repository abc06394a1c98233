//! GstNavigation: pointer, wheel and keys on wldmabufsink's window come
//! upstream as navigation events in the frame's pixels (the turn, the
//! scale and the borders undone), and so do events an application sends
//! through the interface. The compositor is tests/syncobj_compositor
//! (Smithay) with a real seat: wl_pointer hit-testing the window's
//! surfaces, wl_keyboard with libxkbcommon's default (us) keymap. Runs on
//! the bare host (memfd dma-bufs, no render node).
#![cfg(all(feature = "headless", feature = "gstreamer"))]

mod common;
mod syncobj_compositor;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gst::{init, launch};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use syncobj_compositor::{Action, TestCompositor};

const BTN_LEFT: u32 = 0x110;
const KEY_Q: u32 = 16;
const KEY_LEFTSHIFT: u32 = 42;
const KEY_LEFT: u32 = 105;

/// What a navigation event said: its kind, its button or key, where
/// (frame pixels) and the modifier state.
#[derive(Debug, Clone, PartialEq)]
struct Nav {
    event: String,
    detail: String,
    at: Option<(f64, f64)>,
    state: gst_video::NavigationModifierType,
}

fn nav(event: &str, detail: &str, at: Option<(f64, f64)>, state: gst_video::NavigationModifierType) -> Nav {
    Nav {
        event: event.into(),
        detail: detail.into(),
        at,
        state,
    }
}

fn read(s: &gst::StructureRef) -> Nav {
    let detail = s
        .get::<i32>("button")
        .map(|b| b.to_string())
        .or_else(|_| s.get::<String>("key"))
        .or_else(|_| s.get::<f64>("delta_pointer_y").map(|d| format!("dy {d}")))
        .unwrap_or_default();
    let at = s.get::<f64>("pointer_x").ok().zip(s.get::<f64>("pointer_y").ok());
    // Rounded to 1/100 pixel: the mapping is exact arithmetic on these
    // sizes, the rounding only hides float printing.
    let at = at.map(|(x, y)| ((x * 100.0).round() / 100.0, (y * 100.0).round() / 100.0));
    Nav {
        event: s.get::<String>("event").unwrap_or_default(),
        detail,
        at,
        state: s.get("state").unwrap_or(gst_video::NavigationModifierType::empty()),
    }
}

/// What the seat does, in the window described at the test.
const ACTIONS: &[Action] = &[
    // Over the left border: nothing is sent.
    Action::PointerTo(10.0, 100.0),
    // The centre of the window is the centre of the frame.
    Action::PointerTo(100.0, 100.0),
    // Near the window's top-left corner: the turned frame's (4, 8),
    // which is the buffer's bottom-left, (8, 120 - 4).
    Action::PointerTo(30.0, 10.0),
    Action::Button(BTN_LEFT, true),
    Action::Button(BTN_LEFT, false),
    Action::Scroll(1),
    Action::Key(KEY_Q, true),
    Action::Key(KEY_Q, false),
    Action::Key(KEY_LEFTSHIFT, true),
    Action::Key(KEY_Q, true),
    Action::Key(KEY_Q, false),
    Action::Key(KEY_LEFTSHIFT, false),
    Action::Key(KEY_LEFT, true),
    Action::Key(KEY_LEFT, false),
];

/// A 160x120 stream turned clockwise (120x160 on screen) in a 200x200
/// window: the video is fitted to 150x200 at (25, 0), black borders left
/// and right. Every input the compositor sends, and two events sent
/// through the interface, are checked against the frame pixel under the
/// pointer (worked out here by hand, not by the crate's mapping).
#[test]
fn pointer_wheel_and_keys_go_upstream_in_frame_pixels() {
    init();
    let comp = TestCompositor::start_input(200, 200, (200, 200));
    let pipeline = launch(&format!(
        "videotestsrc name=src pattern=white ! video/x-raw,format=BGRx,width=160,height=120,framerate=30/1 ! \
         wldmabufsink name=sink rotate-method=90r display={}",
        comp.socket_path().display()
    ));
    let sink = pipeline.by_name("sink").unwrap();
    let src_pad = pipeline.by_name("src").unwrap().static_pad("src").unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Nav>::new()));
    let seen_in_probe = Arc::clone(&seen);
    src_pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(e) = info.event()
            && e.type_() == gst::EventType::Navigation
            && let Some(s) = e.structure()
        {
            seen_in_probe.lock().unwrap().push(read(s));
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let shown = || sink.property::<gst::Structure>("stats").get::<u64>("shown").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while shown() < 2 {
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("{m:?}");
        }
        assert!(Instant::now() < deadline, "no frame shown");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Borders, then video: the border's image is black, the video white.
    let screen = comp.capture();
    assert_eq!(screen.rgb(10, 100), [0, 0, 0], "left border");
    assert_eq!(screen.rgb(100, 100), [255, 255, 255], "video");
    assert_eq!(screen.rgb(190, 100), [0, 0, 0], "right border");

    comp.input(ACTIONS);
    use gst_video::NavigationModifierType as M;
    let none = M::empty();
    let corner = Some((8.0, 116.0));
    let mut expected = vec![
        nav("mouse-move", "", Some((80.0, 60.0)), none),
        nav("mouse-move", "", corner, none),
        nav("mouse-button-press", "1", corner, none),
        nav("mouse-button-release", "1", corner, M::BUTTON1_MASK),
        nav("mouse-scroll", "dy -1", corner, none),
        nav("key-press", "q", None, none),
        nav("key-release", "q", None, none),
        nav("key-press", "Shift_L", None, none),
        nav("key-press", "Q", None, M::SHIFT_MASK),
        nav("key-release", "Q", None, M::SHIFT_MASK),
        nav("key-release", "Shift_L", None, M::SHIFT_MASK),
        nav("key-press", "Left", None, none),
        nav("key-release", "Left", None, none),
    ];
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // A little longer: nothing more may come.
        std::thread::sleep(Duration::from_millis(200));
        seen.lock().unwrap().clone()
    };
    assert_eq!(wait_for(expected.len()), expected);

    // An application's events (window coordinates, as glimagesink takes
    // them) are mapped the same way; over the border they are not sent.
    let navigation = sink.clone().dynamic_cast::<gst_video::Navigation>().unwrap();
    navigation.send_event_simple(gst_video::NavigationEvent::new_mouse_move(190.0, 100.0).build());
    navigation.send_event_simple(gst_video::NavigationEvent::new_mouse_move(100.0, 100.0).build());
    expected.push(nav("mouse-move", "", Some((80.0, 60.0)), none));
    assert_eq!(wait_for(expected.len()), expected);
    pipeline.set_state(gst::State::Null).unwrap();

    // The anchor, GStreamer's own waylandsink, on the same compositor
    // with the same input: how many navigation events it sends.
    let anchor = waylandsink_navigation_events();
    println!(
        "navigation events: wldmabufsink {} of {} inputs, waylandsink {anchor}",
        expected.len() - 1,
        ACTIONS.len()
    );
}

/// The navigation events GStreamer's waylandsink sends upstream for
/// [`ACTIONS`] over its window (once its first frame is on screen).
fn waylandsink_navigation_events() -> usize {
    let comp = TestCompositor::start_input(200, 200, (200, 200));
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc name=src pattern=white ! video/x-raw,format=BGRx,width=160,height=120,framerate=30/1 ! \
         waylandsink display={}",
        comp.socket_path().display()
    ))
    .expect("waylandsink (gstreamer1.0-plugins-bad: scripts/setup)")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src_pad = pipeline.by_name("src").unwrap().static_pad("src").unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let seen_in_probe = Arc::clone(&seen);
    src_pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if info.event().is_some_and(|e| e.type_() == gst::EventType::Navigation) {
            *seen_in_probe.lock().unwrap() += 1;
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while comp.capture().rgb(60, 60) != [255, 255, 255] {
        assert!(Instant::now() < deadline, "waylandsink showed no frame");
        std::thread::sleep(Duration::from_millis(20));
    }
    comp.input(ACTIONS);
    std::thread::sleep(Duration::from_secs(1));
    pipeline.set_state(gst::State::Null).unwrap();
    *seen.lock().unwrap()
}
