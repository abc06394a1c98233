//! GstNavigation: pointer and keyboard input on our window goes upstream
//! as navigation events (DVD menus, players' pointer handling), in the
//! frame's pixels (the video's place, scale and turn undone: what an
//! element upstream drew); events an application sends through the
//! interface (window coordinates, as glimagesink takes them) are mapped
//! the same way. Pointer events over the borders are not sent.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::prelude::BaseSinkExtManual;
use gstreamer_video as gst_video;
use gstreamer_video::subclass::prelude::*;

use gst_video::{NavigationEvent, NavigationModifierType as M};

use super::{CAT, WlDmaBufSink};
use crate::elements::lock;
use crate::wayland::{InputEvent, Modifiers};

impl NavigationImpl for WlDmaBufSink {
    fn send_event(&self, structure: gst::Structure) {
        self.send_navigation(gst::event::Navigation::new(structure));
    }

    fn send_event_simple(&self, event: gst::Event) {
        self.send_navigation(event);
    }
}

impl WlDmaBufSink {
    /// Input on our window since the last call, upstream. Called after
    /// every frame (the presenter reads events while it shows frames),
    /// with none of our locks held.
    pub(super) fn forward_input(&self) {
        let events = match lock(&self.state).presenter.as_mut() {
            Some(p) => p.take_input(),
            None => return,
        };
        for e in events {
            let event = navigation_event(e).build();
            if !self.obj().sink_pad().push_event(event) {
                gst::trace!(CAT, imp = self, "no element upstream took a navigation event");
            }
        }
    }

    /// An application's navigation event: its pointer position (in the
    /// window, or embedded in its surface) is mapped into the frame's
    /// pixels, then the event goes upstream.
    fn send_navigation(&self, event: gst::Event) {
        let Some(s) = event.structure() else {
            return;
        };
        let event = match (s.get::<f64>("pointer_x"), s.get::<f64>("pointer_y")) {
            (Ok(x), Ok(y)) => {
                let mapped = lock(&self.state)
                    .presenter
                    .as_ref()
                    .and_then(|p| p.window_to_frame(x, y));
                let Some((fx, fy)) = mapped else {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "navigation at ({x}, {y}) is outside the video: not sent"
                    );
                    return;
                };
                let mut s = s.to_owned();
                s.set("pointer_x", fx);
                s.set("pointer_y", fy);
                gst::event::Navigation::new(s)
            }
            _ => event,
        };
        self.obj().sink_pad().push_event(event);
    }
}

/// GStreamer's modifier state for `m`.
fn modifier_state(m: Modifiers) -> M {
    let mut state = M::empty();
    for (on, flag) in [
        (m.shift, M::SHIFT_MASK),
        (m.control, M::CONTROL_MASK),
        (m.alt, M::MOD1_MASK),
        (m.logo, M::SUPER_MASK),
        (m.buttons[0], M::BUTTON1_MASK),
        (m.buttons[1], M::BUTTON2_MASK),
        (m.buttons[2], M::BUTTON3_MASK),
    ] {
        if on {
            state |= flag;
        }
    }
    state
}

/// The navigation event for an input event. Scroll deltas are in wheel
/// steps, positive up and left (as glimagesink sends them).
pub(super) fn navigation_event(e: InputEvent) -> NavigationEvent {
    match e {
        InputEvent::PointerMotion { x, y, modifiers } => NavigationEvent::MouseMove {
            x,
            y,
            modifier_state: modifier_state(modifiers),
        },
        InputEvent::PointerButton {
            button,
            pressed,
            x,
            y,
            modifiers,
        } => {
            let modifier_state = modifier_state(modifiers);
            if pressed {
                NavigationEvent::MouseButtonPress {
                    button,
                    x,
                    y,
                    modifier_state,
                }
            } else {
                NavigationEvent::MouseButtonRelease {
                    button,
                    x,
                    y,
                    modifier_state,
                }
            }
        }
        InputEvent::Scroll {
            x,
            y,
            dx,
            dy,
            modifiers,
        } => NavigationEvent::MouseScroll {
            x,
            y,
            delta_x: -dx,
            delta_y: -dy,
            modifier_state: modifier_state(modifiers),
        },
        InputEvent::Key {
            name,
            pressed,
            modifiers,
        } => {
            let modifier_state = modifier_state(modifiers);
            if pressed {
                NavigationEvent::KeyPress {
                    key: name,
                    modifier_state,
                }
            } else {
                NavigationEvent::KeyRelease {
                    key: name,
                    modifier_state,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_becomes_gstreamers_navigation_events() {
        gst::init().unwrap();
        let held = Modifiers {
            shift: true,
            buttons: [true, false, false],
            ..Modifiers::default()
        };
        let s = navigation_event(InputEvent::PointerButton {
            button: 3,
            pressed: true,
            x: 10.5,
            y: 20.0,
            modifiers: held,
        })
        .structure();
        assert_eq!(s.get::<&str>("event").unwrap(), "mouse-button-press");
        assert_eq!(s.get::<i32>("button").unwrap(), 3);
        assert_eq!(s.get::<f64>("pointer_x").unwrap(), 10.5);
        let state = s.get::<M>("state").unwrap();
        assert_eq!(state, M::SHIFT_MASK | M::BUTTON1_MASK);
        // Down one step on the wheel is a negative delta, as glimagesink.
        let s = navigation_event(InputEvent::Scroll {
            x: 1.0,
            y: 2.0,
            dx: 0.0,
            dy: 1.0,
            modifiers: Modifiers::default(),
        })
        .structure();
        assert_eq!(s.get::<f64>("delta_pointer_y").unwrap(), -1.0);
        let s = navigation_event(InputEvent::Key {
            name: "Left".into(),
            pressed: false,
            modifiers: Modifiers::default(),
        })
        .structure();
        assert_eq!(s.get::<&str>("event").unwrap(), "key-release");
        assert_eq!(s.get::<&str>("key").unwrap(), "Left");
    }
}
