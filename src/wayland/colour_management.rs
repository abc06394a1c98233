//! Telling the compositor what a frame's colours mean beyond the YCbCr
//! matrix (`wp_color_management_v1`): a parametric image description with
//! the stream's named transfer function and primaries and, for HDR10, its
//! mastering display and content light levels.
//!
//! A description is made once per (transfer, primaries, HDR metadata) and
//! set on the surface only once the compositor said `ready` (a description
//! that is not ready is the fatal `image_description` error); until then,
//! and for a stream whose transfer or primaries the compositor does not
//! name, the surface has none (the compositor's default, sRGB). A `failed`
//! description is counted and reported, never set. Only named values and
//! features the compositor listed are sent; HDR light levels that
//! version 1 of the protocol would reject (`invalid_luminance`) are left
//! out.

use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, WEnum};
use wayland_protocols::wp::color_management::v1::client::{
    wp_color_management_surface_v1::WpColorManagementSurfaceV1,
    wp_color_manager_v1::{
        self, Feature, Primaries as NamedPrimaries, RenderIntent, TransferFunction, WpColorManagerV1,
    },
    wp_image_description_creator_params_v1::WpImageDescriptionCreatorParamsV1,
    wp_image_description_v1::{self, WpImageDescriptionV1},
};

use super::queue::State;
use crate::colour::{Colorimetry, Hdr10, Primaries, Transfer};
use wayland_client::protocol::wl_surface::WlSurface;

/// What the compositor's `wp_color_manager_v1` offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColourManagementOffer {
    /// The global is offered.
    pub offered: bool,
    /// Parametric image descriptions are supported.
    pub parametric: bool,
    /// Mastering display primaries and luminances may be set.
    pub mastering: bool,
    /// The perceptual render intent is listed.
    pub perceptual: bool,
    /// Named transfer functions listed (protocol values).
    pub transfer_functions: Vec<u32>,
    /// Named primaries listed (protocol values).
    pub primaries: Vec<u32>,
}

/// How far a description got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    Ready,
    Failed(String),
}

/// The colour-management side of a presenter.
pub(super) struct ColourManagement {
    manager: Option<WpColorManagerV1>,
    surface: Option<WpColorManagementSurfaceV1>,
    /// The description for the current stream and what it describes.
    description: Option<(Key, WpImageDescriptionV1)>,
    /// What the surface has set (pending or committed).
    set: Option<Key>,
}

/// What a description describes.
type Key = (TransferFunction, NamedPrimaries, Option<Hdr10>);

/// The protocol's named transfer function for `t`.
fn named_tf(t: Transfer) -> Option<TransferFunction> {
    Some(match t {
        Transfer::Bt709 => TransferFunction::Bt1886,
        Transfer::Srgb => TransferFunction::Srgb,
        Transfer::Gamma22 => TransferFunction::Gamma22,
        Transfer::Gamma28 => TransferFunction::Gamma28,
        Transfer::Smpte240 => TransferFunction::St240,
        Transfer::Linear => TransferFunction::ExtLinear,
        Transfer::Pq => TransferFunction::St2084Pq,
        Transfer::Hlg => TransferFunction::Hlg,
        Transfer::Unspecified => return None,
    })
}

/// The protocol's named primaries for `p`.
fn named_primaries(p: Primaries) -> Option<NamedPrimaries> {
    Some(match p {
        Primaries::Bt709 => NamedPrimaries::Srgb,
        Primaries::Bt470M => NamedPrimaries::PalM,
        Primaries::Bt470Bg => NamedPrimaries::Pal,
        Primaries::Smpte170M => NamedPrimaries::Ntsc,
        Primaries::Film => NamedPrimaries::GenericFilm,
        Primaries::Bt2020 => NamedPrimaries::Bt2020,
        Primaries::Xyz => NamedPrimaries::Cie1931Xyz,
        Primaries::DciP3 => NamedPrimaries::DciP3,
        Primaries::DisplayP3 => NamedPrimaries::DisplayP3,
        Primaries::AdobeRgb => NamedPrimaries::AdobeRgb,
        Primaries::Ebu3213 | Primaries::Unspecified => return None,
    })
}

impl ColourManagementOffer {
    /// What a description of `c` would hold, where the compositor names
    /// its transfer function and primaries.
    fn key(&self, c: &Colorimetry) -> Option<Key> {
        if !(self.offered && self.parametric && self.perceptual) {
            return None;
        }
        let tf = named_tf(c.transfer).filter(|tf| self.transfer_functions.contains(&u32::from(*tf)))?;
        let primaries = named_primaries(c.primaries).filter(|p| self.primaries.contains(&u32::from(*p)))?;
        Some((tf, primaries, c.hdr.filter(|_| self.mastering)))
    }
}

impl ColourManagement {
    pub(super) fn new(manager: Option<WpColorManagerV1>) -> Self {
        Self {
            manager,
            surface: None,
            description: None,
            set: None,
        }
    }

    /// Makes the description of `c` when the stream's key changed (the
    /// old one destroyed); true when a new one was made.
    pub(super) fn prepare(&mut self, state: &mut State, qh: &QueueHandle<State>, c: &Colorimetry) -> bool {
        let Some(manager) = &self.manager else { return false };
        let key = state.colour_management.key(c);
        if self.description.as_ref().map(|(k, _)| *k) == key {
            return false;
        }
        if let Some((_, old)) = self.description.take() {
            state.descriptions.remove(&old.id());
            old.destroy();
        }
        let Some(key) = key else { return false };
        let description = create(manager, qh, key);
        state.descriptions.insert(description.id(), Status::Pending);
        self.description = Some((key, description));
        true
    }

    /// Sets the stream's description on `surface` for the next commit once
    /// it is ready, or unsets what no longer applies. Returns whether the
    /// commit carries one.
    pub(super) fn apply(&mut self, state: &State, surface: &WlSurface, qh: &QueueHandle<State>) -> bool {
        let Some(manager) = &self.manager else { return false };
        let ready = self
            .description
            .as_ref()
            .filter(|(_, d)| state.descriptions.get(&d.id()) == Some(&Status::Ready));
        match ready {
            Some((key, description)) => {
                if self.set != Some(*key) {
                    let object = self.surface.get_or_insert_with(|| manager.get_surface(surface, qh, ()));
                    object.set_image_description(description, RenderIntent::Perceptual);
                    self.set = Some(*key);
                }
                true
            }
            None => {
                if self.set.take().is_some()
                    && let Some(object) = &self.surface
                {
                    object.unset_image_description();
                }
                false
            }
        }
    }

    /// Whether the current description failed.
    pub(super) fn failed(&self, state: &State) -> bool {
        self.description
            .as_ref()
            .is_some_and(|(_, d)| matches!(state.descriptions.get(&d.id()), Some(Status::Failed(_))))
    }

    /// Whether the current description is still waiting for `ready`.
    pub(super) fn pending(&self, state: &State) -> bool {
        self.description
            .as_ref()
            .is_some_and(|(_, d)| state.descriptions.get(&d.id()) == Some(&Status::Pending))
    }

    /// Destroys our objects (children first).
    pub(super) fn destroy(&mut self) {
        if let Some((_, d)) = self.description.take() {
            d.destroy();
        }
        if let Some(s) = self.surface.take() {
            s.destroy();
        }
        if let Some(m) = self.manager.take() {
            m.destroy();
        }
    }
}

/// A parametric description of `key` (the creator is consumed by
/// `create`).
fn create(manager: &WpColorManagerV1, qh: &QueueHandle<State>, key: Key) -> WpImageDescriptionV1 {
    let (tf, primaries, hdr) = key;
    let creator: WpImageDescriptionCreatorParamsV1 = manager.create_parametric_creator(qh, ());
    creator.set_tf_named(tf);
    creator.set_primaries_named(primaries);
    if let Some(h) = hdr {
        // 0.00002 units -> millionths.
        let c = |v: u16| i32::from(v) * 20;
        let [r, g, b] = h.primaries;
        creator.set_mastering_display_primaries(
            c(r.0),
            c(r.1),
            c(g.0),
            c(g.1),
            c(b.0),
            c(b.1),
            c(h.white_point.0),
            c(h.white_point.1),
        );
        // min in 0.0001 cd/m² (the protocol's unit), max in cd/m².
        let max_l = h.max_luminance / 10_000;
        let min_l = h.min_luminance;
        if max_l > 0 && u64::from(max_l) * 10_000 > u64::from(min_l) {
            creator.set_mastering_luminance(min_l, max_l);
            // Version 1 rejects light levels outside (min L, max L], and
            // every version MaxFALL above MaxCLL.
            let fits = |v: u16| v > 0 && u32::from(v) <= max_l && u64::from(v) * 10_000 > u64::from(min_l);
            if fits(h.max_cll) {
                creator.set_max_cll(u32::from(h.max_cll));
            }
            if fits(h.max_fall) && (!fits(h.max_cll) || h.max_fall <= h.max_cll) {
                creator.set_max_fall(u32::from(h.max_fall));
            }
        }
    }
    creator.create(qh, ())
}

impl Dispatch<WpColorManagerV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &WpColorManagerV1,
        event: wp_color_manager_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wp_color_manager_v1::Event;
        let offer = &mut state.colour_management;
        match event {
            Event::SupportedIntent { render_intent } => {
                offer.perceptual |= render_intent == WEnum::Value(RenderIntent::Perceptual);
            }
            Event::SupportedFeature { feature } => match feature {
                WEnum::Value(Feature::Parametric) => offer.parametric = true,
                WEnum::Value(Feature::SetMasteringDisplayPrimaries) => offer.mastering = true,
                _ => {}
            },
            Event::SupportedTfNamed { tf } => offer.transfer_functions.push(u32::from(tf)),
            Event::SupportedPrimariesNamed { primaries } => offer.primaries.push(u32::from(primaries)),
            _ => {}
        }
    }
}

impl Dispatch<WpImageDescriptionV1, ()> for State {
    fn event(
        state: &mut Self,
        description: &WpImageDescriptionV1,
        event: wp_image_description_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wp_image_description_v1::Event;
        let status = match event {
            Event::Ready { .. } | Event::Ready2 { .. } => Status::Ready,
            Event::Failed { cause, msg } => Status::Failed(format!("{cause:?}: {msg}")),
            _ => return,
        };
        if let Some(s) = state.descriptions.get_mut(&description.id()) {
            *s = status;
        }
    }
}

wayland_client::delegate_noop!(State: ignore WpColorManagementSurfaceV1);
wayland_client::delegate_noop!(State: ignore WpImageDescriptionCreatorParamsV1);
