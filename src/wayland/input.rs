//! Input on our own toplevel: the seat's pointer and keyboard. Keys are
//! kept as Linux evdev codes (the viewer's [`take_keys`](super::Presenter::take_keys))
//! and, with the pointer, as [`InputEvent`]s for
//! [`take_input`](super::Presenter::take_input), which the presenter maps
//! from surface coordinates into the frame's pixels (the sink's
//! GstNavigation events). Key names come from the compositor's keymap
//! through libxkbcommon (xkb keysym names: "Left", "space", "q"), the names
//! GStreamer's other sinks send.
//!
//! An embedded window takes no input (its surface has an empty input
//! region; the application owns input), so nothing comes here for it.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use wayland_client::backend::ObjectId;
use wayland_client::protocol::{
    wl_keyboard::{self, WlKeyboard},
    wl_pointer::{self, WlPointer},
    wl_seat::{self, WlSeat},
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, WEnum};
use xkbcommon::xkb;

use super::queue::State;

/// Most key presses kept for [`take_keys`](super::Presenter::take_keys)
/// (the oldest go).
pub(super) const MAX_PENDING_KEYS: usize = 64;

/// Most input events kept for [`take_input`](super::Presenter::take_input)
/// (the oldest go): a user that never takes them must not grow the queue.
pub const MAX_PENDING_INPUT: usize = 256;

/// The largest keymap read from the compositor (libxkbcommon's own
/// keymaps are about 60 KiB).
const MAX_KEYMAP: u32 = 4 << 20;

/// Modifier keys and pointer buttons held during an [`InputEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modifiers {
    /// Shift.
    pub shift: bool,
    /// Control.
    pub control: bool,
    /// Alt (xkb's Mod1).
    pub alt: bool,
    /// Super / logo.
    pub logo: bool,
    /// Pointer buttons held: left, middle, right.
    pub buttons: [bool; 3],
}

/// Pointer or keyboard input on our window. Pointer positions are in the
/// frame's pixels (the buffer's, before its turn: what an element upstream
/// drew), borders excluded: input over the borders is not reported.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// The pointer moved to (x, y).
    PointerMotion {
        /// Frame x.
        x: f64,
        /// Frame y.
        y: f64,
        /// What was held.
        modifiers: Modifiers,
    },
    /// A pointer button went down or up at (x, y).
    PointerButton {
        /// GStreamer's (X11's) button number: 1 left, 2 middle, 3 right,
        /// 8 back, 9 forward; other evdev buttons as 10 + (code - BTN_MOUSE).
        button: i32,
        /// Down (true) or up.
        pressed: bool,
        /// Frame x.
        x: f64,
        /// Frame y.
        y: f64,
        /// What was held (before this event).
        modifiers: Modifiers,
    },
    /// Scrolled at (x, y), in wheel steps (right and down positive; a
    /// touchpad's continuous scroll: 10 surface units a step).
    Scroll {
        /// Frame x.
        x: f64,
        /// Frame y.
        y: f64,
        /// Horizontal steps.
        dx: f64,
        /// Vertical steps.
        dy: f64,
        /// What was held.
        modifiers: Modifiers,
    },
    /// A key went down or up.
    Key {
        /// The xkb keysym name ("Left", "space", "q", "Q" with shift);
        /// the keymap the compositor sent decides it.
        name: String,
        /// Down (true) or up.
        pressed: bool,
        /// What was held (before this event).
        modifiers: Modifiers,
    },
}

/// An input event as it came: pointer positions in the coordinates of
/// the surface that had the pointer (the presenter maps them).
#[derive(Debug, Clone)]
pub(super) struct RawInput {
    /// The surface under the pointer (None for keys).
    pub(super) surface: Option<ObjectId>,
    /// The event, with surface coordinates.
    pub(super) event: InputEvent,
}

/// A compiled keymap and its state. libxkbcommon's objects are reference
/// counted without atomics and are not to be used from two threads at
/// once; all three are owned here alone (no reference leaves this struct),
/// so moving it to another thread with its owner is sound.
struct Xkb {
    _context: xkb::Context,
    _keymap: xkb::Keymap,
    state: xkb::State,
}

// SAFETY: see the type's comment: every reference to the context, keymap
// and state is owned by this value and used only through `&mut self` of
// its owner (the presenter's State), never from two threads at once.
unsafe impl Send for Xkb {}

/// The seat's devices and what they reported.
#[derive(Default)]
pub(super) struct Input {
    pub(super) keyboard: Option<WlKeyboard>,
    pub(super) pointer: Option<WlPointer>,
    xkb: Option<Xkb>,
    /// Why the compositor's keymap could not be used.
    pub(super) keymap_error: Option<String>,
    /// Keys pressed while our window had the focus (evdev codes).
    pub(super) keys: Vec<u32>,
    /// Events for `take_input`.
    pub(super) events: VecDeque<RawInput>,
    /// The surface under the pointer and where on it.
    focus: Option<(ObjectId, f64, f64)>,
    modifiers: Modifiers,
    /// Scroll of the current pointer frame: (dx, dy) steps, and whether a
    /// discrete value already counted for each axis.
    scroll: (f64, f64, bool, bool),
}

impl Input {
    fn push(&mut self, surface: Option<ObjectId>, event: InputEvent) {
        if self.events.len() >= MAX_PENDING_INPUT {
            self.events.pop_front();
        }
        self.events.push_back(RawInput { surface, event });
    }

    /// Releases the devices (the seat is the window's).
    pub(super) fn release(&mut self) {
        if let Some(k) = self.keyboard.take()
            && k.version() >= 3
        {
            k.release();
        }
        if let Some(p) = self.pointer.take()
            && p.version() >= 3
        {
            p.release();
        }
        self.xkb = None;
    }

    /// The keymap the compositor sent, read out of its file (a copy: a
    /// mapping of a file the compositor may truncate could fault).
    fn load_keymap(&mut self, fd: &OwnedFd, size: u32) -> Result<(), String> {
        if size == 0 || size > MAX_KEYMAP {
            return Err(format!("keymap of {size} bytes"));
        }
        let mut text = vec![0u8; size as usize];
        let mut read = 0;
        while read < text.len() {
            match rustix::io::pread(fd, &mut text[read..], read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("reading the keymap: {e}")),
            }
        }
        text.truncate(read);
        // The protocol's keymap string ends with a NUL.
        while text.last() == Some(&0) {
            text.pop();
        }
        let text = String::from_utf8(text).map_err(|e| format!("keymap is not UTF-8: {e}"))?;
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap =
            xkb::Keymap::new_from_string(&context, text, xkb::KEYMAP_FORMAT_TEXT_V1, xkb::KEYMAP_COMPILE_NO_FLAGS)
                .ok_or("libxkbcommon could not compile the keymap")?;
        let state = xkb::State::new(&keymap);
        self.xkb = Some(Xkb {
            _context: context,
            _keymap: keymap,
            state,
        });
        Ok(())
    }
}

/// GStreamer's button number for an evdev button code (see
/// [`InputEvent::PointerButton`]).
pub(super) fn button_number(code: u32) -> i32 {
    const BTN_MOUSE: u32 = 0x110;
    match code {
        0x110 => 1,
        0x112 => 2,
        0x111 => 3,
        0x113 | 0x116 => 8,
        0x114 | 0x115 => 9,
        c => 10 + c.saturating_sub(BTN_MOUSE).min(1000) as i32,
    }
}

impl Dispatch<WlSeat, ()> for State {
    fn event(state: &mut Self, seat: &WlSeat, event: wl_seat::Event, _: &(), _: &Connection, qh: &QueueHandle<Self>) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            let input = &mut state.input;
            match (&input.keyboard, caps.contains(wl_seat::Capability::Keyboard)) {
                (None, true) => input.keyboard = Some(seat.get_keyboard(qh, ())),
                (Some(k), false) => {
                    if k.version() >= 3 {
                        k.release();
                    }
                    input.keyboard = None;
                    input.xkb = None;
                }
                _ => {}
            }
            match (&input.pointer, caps.contains(wl_seat::Capability::Pointer)) {
                (None, true) => input.pointer = Some(seat.get_pointer(qh, ())),
                (Some(p), false) => {
                    if p.version() >= 3 {
                        p.release();
                    }
                    input.pointer = None;
                    input.focus = None;
                }
                _ => {}
            }
        }
    }
}

impl Dispatch<WlKeyboard, ()> for State {
    fn event(
        state: &mut Self,
        _: &WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let input = &mut state.input;
        match event {
            // The keymap's fd is an OwnedFd in the event and closes with it.
            wl_keyboard::Event::Keymap {
                format: WEnum::Value(wl_keyboard::KeymapFormat::XkbV1),
                fd,
                size,
            } => {
                // Unusable: keys then have no names (no Key events); the
                // evdev codes still come.
                input.keymap_error = input.load_keymap(&fd, size).err();
                if input.keymap_error.is_some() {
                    input.xkb = None;
                }
            }
            wl_keyboard::Event::Keymap { .. } => input.xkb = None,
            wl_keyboard::Event::Modifiers {
                mods_depressed,
                mods_latched,
                mods_locked,
                group,
                ..
            } => {
                if let Some(x) = &mut input.xkb {
                    x.state
                        .update_mask(mods_depressed, mods_latched, mods_locked, 0, 0, group);
                    let on = |name: &str| x.state.mod_name_is_active(name, xkb::STATE_MODS_EFFECTIVE);
                    input.modifiers.shift = on(xkb::MOD_NAME_SHIFT);
                    input.modifiers.control = on(xkb::MOD_NAME_CTRL);
                    input.modifiers.alt = on(xkb::MOD_NAME_ALT);
                    input.modifiers.logo = on(xkb::MOD_NAME_LOGO);
                }
            }
            wl_keyboard::Event::Key {
                key,
                state: WEnum::Value(key_state),
                ..
            } => {
                let pressed = key_state == wl_keyboard::KeyState::Pressed;
                if pressed {
                    // Bounded: a user of the presenter that never takes keys
                    // (the sink) must not grow this for as long as keys are
                    // pressed.
                    if input.keys.len() >= MAX_PENDING_KEYS {
                        input.keys.remove(0);
                    }
                    input.keys.push(key);
                }
                if let Some(x) = &input.xkb {
                    // xkb keycodes are evdev codes + 8.
                    let sym = x.state.key_get_one_sym(xkb::Keycode::new(key.saturating_add(8)));
                    if sym != xkb::Keysym::NoSymbol {
                        let modifiers = input.modifiers;
                        input.push(
                            None,
                            InputEvent::Key {
                                name: xkb::keysym_get_name(sym),
                                pressed,
                                modifiers,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

impl Dispatch<WlPointer, ()> for State {
    fn event(state: &mut Self, _: &WlPointer, event: wl_pointer::Event, _: &(), _: &Connection, _: &QueueHandle<Self>) {
        let input = &mut state.input;
        let at = |input: &Input| input.focus.clone();
        match event {
            wl_pointer::Event::Enter {
                surface,
                surface_x,
                surface_y,
                ..
            } => {
                input.focus = Some((surface.id(), surface_x, surface_y));
                let modifiers = input.modifiers;
                input.push(
                    Some(surface.id()),
                    InputEvent::PointerMotion {
                        x: surface_x,
                        y: surface_y,
                        modifiers,
                    },
                );
            }
            wl_pointer::Event::Leave { .. } => {
                input.focus = None;
                input.modifiers.buttons = [false; 3];
            }
            wl_pointer::Event::Motion {
                surface_x, surface_y, ..
            } => {
                if let Some((id, x, y)) = &mut input.focus {
                    (*x, *y) = (surface_x, surface_y);
                    let (id, modifiers) = (id.clone(), input.modifiers);
                    input.push(
                        Some(id),
                        InputEvent::PointerMotion {
                            x: surface_x,
                            y: surface_y,
                            modifiers,
                        },
                    );
                }
            }
            wl_pointer::Event::Button {
                button,
                state: WEnum::Value(button_state),
                ..
            } => {
                if let Some((id, x, y)) = at(input) {
                    let pressed = button_state == wl_pointer::ButtonState::Pressed;
                    let number = button_number(button);
                    let modifiers = input.modifiers;
                    input.push(
                        Some(id),
                        InputEvent::PointerButton {
                            button: number,
                            pressed,
                            x,
                            y,
                            modifiers,
                        },
                    );
                    if let Some(held) = usize::try_from(number - 1)
                        .ok()
                        .and_then(|i| input.modifiers.buttons.get_mut(i))
                    {
                        *held = pressed;
                    }
                }
            }
            wl_pointer::Event::AxisDiscrete { axis, discrete } => {
                let steps = f64::from(discrete);
                match axis {
                    WEnum::Value(wl_pointer::Axis::VerticalScroll) => (input.scroll.1, input.scroll.3) = (steps, true),
                    WEnum::Value(wl_pointer::Axis::HorizontalScroll) => {
                        (input.scroll.0, input.scroll.2) = (steps, true)
                    }
                    _ => {}
                }
            }
            wl_pointer::Event::Axis { axis, value, .. } => {
                // A discrete value in the same frame already counted.
                let steps = value / 10.0;
                match axis {
                    WEnum::Value(wl_pointer::Axis::VerticalScroll) if !input.scroll.3 => input.scroll.1 += steps,
                    WEnum::Value(wl_pointer::Axis::HorizontalScroll) if !input.scroll.2 => input.scroll.0 += steps,
                    _ => {}
                }
                if input.pointer.as_ref().is_some_and(|p| p.version() < 5) {
                    flush_scroll(input);
                }
            }
            wl_pointer::Event::Frame => flush_scroll(input),
            _ => {}
        }
    }
}

/// The scroll of one pointer frame becomes one event.
fn flush_scroll(input: &mut Input) {
    let (dx, dy, _, _) = std::mem::take(&mut input.scroll);
    if (dx != 0.0 || dy != 0.0)
        && let Some((id, x, y)) = input.focus.clone()
    {
        let modifiers = input.modifiers;
        input.push(
            Some(id),
            InputEvent::Scroll {
                x,
                y,
                dx,
                dy,
                modifiers,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evdev_buttons_get_gstreamers_numbers() {
        assert_eq!(button_number(0x110), 1);
        assert_eq!(button_number(0x112), 2);
        assert_eq!(button_number(0x111), 3);
        assert_eq!(button_number(0x113), 8);
        assert_eq!(button_number(0x114), 9);
        assert_eq!(button_number(0x117), 17);
        assert_eq!(button_number(0), 10);
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut input = Input::default();
        for i in 0..MAX_PENDING_INPUT + 10 {
            input.push(
                None,
                InputEvent::Key {
                    name: i.to_string(),
                    pressed: true,
                    modifiers: Modifiers::default(),
                },
            );
        }
        assert_eq!(input.events.len(), MAX_PENDING_INPUT);
        assert!(matches!(&input.events[0].event, InputEvent::Key { name, .. } if name == "10"));
    }
}
