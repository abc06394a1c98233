//! Telling the compositor what a frame's YUV samples mean
//! (`wp_color_representation_v1`), and the rule for frames it cannot be
//! told about ([`ColourCorrection`]).
//!
//! The manager lists the (coefficients, range) pairs the compositor takes;
//! only those are ever sent (anything else is the fatal `coefficients`
//! error). The surface object exists only while a YUV frame is told or a
//! frame with straight alpha is: an RGB buffer committed with YCbCr
//! coefficients is the fatal `pixel_format` error, and nothing set can be
//! unset but by destroying the object (which unsets everything at the next
//! commit), so a frame that needs less than the object holds gets a fresh
//! one. Everything is double-buffered and set before the commit whose
//! buffer needs it. The chroma location is sent for 4:2:0 formats only,
//! when the stream states it.
//!
//! Alpha: Wayland reads alpha as premultiplied (electrical values) unless
//! told otherwise; GStreamer's raw video is straight. A frame with straight
//! alpha is told `straight` where the compositor lists it (mutter 50 does;
//! Weston 16, KWin 6.7 and sway 1.12 list only `premultiplied_electrical`).
//! Where it cannot be told, it is sent as it is and counted
//! (`alpha_untold`): its translucent pixels show brighter than meant.
//! Premultiplied frames need nothing: they are the default.
//!
//! Without the protocol, or for a pair it does not list, what the
//! compositor does is its own choice. Measured (README's colour section):
//! Weston 14 (no protocol) reads YUV as BT.601 limited, the EGL default
//! (`EGL_EXT_image_dma_buf_import`: `EGL_ITU_REC601_EXT`,
//! `EGL_YUV_NARROW_RANGE_EXT`); Weston 16 assumes BT.709 when it is not
//! told, but has the protocol. [`ColourCorrection::Auto`] therefore
//! converts a frame the compositor cannot be told about unless it has no
//! protocol and the frame is BT.601 limited.

use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::color_representation::v1::client::{
    wp_color_representation_manager_v1::{self, WpColorRepresentationManagerV1},
    wp_color_representation_surface_v1::{
        self, AlphaMode, ChromaLocation, Coefficients, WpColorRepresentationSurfaceV1,
    },
};

use super::presenter::{Presenter, Via};
use super::queue::State;
use crate::colour::{Alpha, Colorimetry, Matrix, Range};
use crate::format;
use drm_fourcc::DrmFourcc;
use wayland_client::protocol::wl_surface::WlSurface;

/// What the compositor is assumed to do with YUV it is not told about and
/// that has no colour-representation protocol: BT.601 limited (see the
/// module docs).
pub const ASSUMED_UNTOLD: Colorimetry = Colorimetry::BT601;

/// When a YUV frame is converted to RGB on our side instead of being sent
/// as it is (a property of `wldmabufsink`, `colour-correction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColourCorrection {
    /// Convert only what the compositor would show wrong: frames whose
    /// matrix and range it cannot be told and does not assume.
    #[default]
    Auto,
    /// Never convert for colour's sake (told where possible, else sent as
    /// they are and counted as uncorrected).
    Never,
    /// Convert every YUV frame that can be converted (a reference, or for
    /// compositors that misread what they are told).
    Always,
}

/// What the compositor offers for colour, as its globals said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColourOffer {
    /// `wp_color_representation_manager_v1` is offered.
    pub representation: bool,
    /// The (matrix, range) pairs it lists that we can name (identity, FCC,
    /// SMPTE 240M, BT.2020 constant luminance and ICtCp are left out).
    pub pairs: Vec<(Matrix, Range)>,
    /// The alpha modes it lists (`premultiplied_electrical`,
    /// `premultiplied_optical`, `straight`).
    pub alpha_modes: Vec<&'static str>,
    /// Every pair it listed, as (H.273-ish protocol coefficient, range)
    /// values, for reports.
    pub raw_pairs: Vec<(u32, u32)>,
}

impl ColourOffer {
    /// Whether `c`'s matrix and range may be sent.
    pub fn lists(&self, c: &Colorimetry) -> bool {
        self.pairs.contains(&(c.matrix, c.range))
    }

    /// Whether alpha mode `straight` may be sent.
    pub fn lists_straight_alpha(&self) -> bool {
        self.representation && self.alpha_modes.contains(&"straight")
    }
}

/// What to tell about one frame's alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AlphaPlan {
    /// Nothing: no alpha channel, premultiplied (the default), or not
    /// stated.
    Nothing,
    /// Straight alpha, told.
    Straight,
    /// Straight alpha the compositor cannot be told: read as premultiplied.
    Untold,
}

impl AlphaPlan {
    /// The plan for a frame of `fourcc` whose alpha is `alpha`.
    pub(super) fn of(offer: &ColourOffer, fourcc: DrmFourcc, alpha: Alpha) -> Self {
        if alpha != Alpha::Straight || !format::info(fourcc).is_ok_and(|i| i.has_alpha) {
            AlphaPlan::Nothing
        } else if offer.lists_straight_alpha() {
            AlphaPlan::Straight
        } else {
            AlphaPlan::Untold
        }
    }
}

/// What to do with one frame's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// RGB: nothing to tell (the surface object, if any, goes).
    Rgb,
    /// YUV the compositor is told about.
    Tell(Colorimetry),
    /// YUV sent untold (the compositor's assumption matches, or the policy
    /// says never, or it cannot be converted): `matches` says whether the
    /// assumption matches.
    Untold {
        /// The compositor is assumed to read it right.
        matches: bool,
    },
    /// YUV to convert to RGB on our side.
    Convert,
}

/// The colour side of a presenter: the manager and our surface's object.
pub(super) struct ColourRep {
    manager: Option<WpColorRepresentationManagerV1>,
    object: Option<WpColorRepresentationSurfaceV1>,
    /// What the object was last set to (matrix + range, chroma site).
    set: Option<Colorimetry>,
    /// A chroma location was sent on the object.
    chroma_sent: bool,
    /// Alpha mode `straight` was sent on the object.
    straight_sent: bool,
    pub(super) policy: ColourCorrection,
}

impl ColourRep {
    pub(super) fn new(manager: Option<WpColorRepresentationManagerV1>) -> Self {
        Self {
            manager,
            object: None,
            set: None,
            chroma_sent: false,
            straight_sent: false,
            policy: ColourCorrection::default(),
        }
    }

    /// The plan for a frame of `fourcc` with colorimetry `c`; `convertible`
    /// says whether a conversion path exists for it.
    pub(super) fn plan(&self, offer: &ColourOffer, fourcc: DrmFourcc, c: Colorimetry, convertible: bool) -> Plan {
        if !format::info(fourcc).is_ok_and(|i| i.is_yuv) {
            return Plan::Rgb;
        }
        let tellable = offer.representation && offer.lists(&c);
        let matches = !offer.representation && c.same_conversion(&ASSUMED_UNTOLD);
        match self.policy {
            ColourCorrection::Always if convertible => Plan::Convert,
            _ if tellable => Plan::Tell(c),
            ColourCorrection::Auto if !matches && convertible => Plan::Convert,
            _ => Plan::Untold { matches },
        }
    }

    /// Brings the surface's colour representation in line with the next
    /// commit: `told` is the colorimetry of a YUV buffer to tell, `None`
    /// for everything else; `straight` says whether the buffer's alpha is
    /// told straight. A buffer that needs none of it destroys the object,
    /// which unsets everything.
    pub(super) fn apply(
        &mut self,
        surface: &WlSurface,
        qh: &QueueHandle<State>,
        fourcc: DrmFourcc,
        told: Option<Colorimetry>,
        straight: bool,
    ) {
        if self.manager.is_none() || (told.is_none() && !straight) {
            self.unset();
            return;
        }
        // Chroma locations are Chroma420SampleLocType: 4:2:0 formats only.
        let is_420 = format::info(fourcc).is_ok_and(|i| i.planes.iter().any(|p| p.v_sub == 2));
        let location = told
            .and_then(|c| c.chroma_site.h273())
            .filter(|_| is_420)
            .and_then(chroma_location);
        // What the object holds stays until it goes: a frame that needs
        // less (no coefficients: on an RGB buffer they are the fatal
        // pixel_format error; no chroma location; no alpha mode) needs a
        // fresh object.
        if (self.set.is_some() && told.is_none())
            || (self.chroma_sent && location.is_none())
            || (self.straight_sent && !straight)
        {
            self.unset();
        }
        let Some(manager) = &self.manager else { return };
        let object = self.object.get_or_insert_with(|| manager.get_surface(surface, qh, ()));
        if let Some(c) = told {
            if self.set.is_none_or(|s| !s.same_conversion(&c)) {
                object.set_coefficients_and_range(coefficients(c.matrix), range(c.range));
            }
            if let Some(loc) = location
                && self
                    .set
                    .is_none_or(|s| s.chroma_site != c.chroma_site || !self.chroma_sent)
            {
                object.set_chroma_location(loc);
                self.chroma_sent = true;
            }
            self.set = Some(c);
        }
        // Sent only where listed (AlphaPlan): anything else is the fatal
        // alpha_mode error.
        if straight && !self.straight_sent {
            object.set_alpha_mode(AlphaMode::Straight);
            self.straight_sent = true;
        }
    }

    /// Destroys the surface's object: everything it set is unset at the
    /// next commit.
    fn unset(&mut self) {
        if let Some(o) = self.object.take() {
            o.destroy();
        }
        self.set = None;
        self.chroma_sent = false;
        self.straight_sent = false;
    }

    /// Destroys our objects (children first).
    pub(super) fn destroy(&mut self) {
        self.unset();
        if let Some(m) = self.manager.take() {
            m.destroy();
        }
    }
}

impl Presenter {
    /// What the compositor offers for colour (`wp_color_representation_v1`
    /// pairs and alpha modes).
    pub fn colour_offer(&self) -> &ColourOffer {
        &self.state.colour
    }

    /// The rule for YUV frames the compositor cannot be told about (default
    /// [`ColourCorrection::Auto`]).
    pub fn set_colour_correction(&mut self, policy: ColourCorrection) {
        self.colour.policy = policy;
    }

    /// Whether `buf` is a YUV frame that [`present`](Presenter::present)
    /// converts to RGB for its colours where it can (the compositor cannot
    /// be told its matrix and range and is not assumed to read them right,
    /// or the policy is [`ColourCorrection::Always`]). A caller that can
    /// convert it itself, on the GPU, presents the RGB result instead.
    pub fn converts_for_colour(&self, buf: &crate::DmaBuf) -> bool {
        self.colour_plan(buf.fourcc(), buf.colorimetry(), true) == Plan::Convert
    }

    /// The plan for one frame (`convertible`: a CPU conversion path exists).
    pub(super) fn colour_plan(&self, fourcc: DrmFourcc, c: Colorimetry, convertible: bool) -> Plan {
        self.colour.plan(&self.state.colour, fourcc, c, convertible)
    }

    /// What the compositor's `wp_color_manager_v1` offers.
    pub fn colour_management_offer(&self) -> &super::ColourManagementOffer {
        &self.state.colour_management
    }

    /// Makes the image description of a stream with colorimetry `c` (once
    /// per stream) and waits up to 200 ms for the compositor's answer, so
    /// that the stream's first frame can carry it; counts a failure.
    pub(super) fn prepare_description(&mut self, c: &Colorimetry) -> Result<(), super::WaylandError> {
        if self.colour_management.prepare(&mut self.state, &self.qh, c) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
            while self.colour_management.pending(&self.state) && std::time::Instant::now() < deadline {
                self.dispatch_timeout(std::time::Duration::from_millis(10))?;
            }
            if self.colour_management.failed(&self.state) {
                self.stats.colour_description_failures += 1;
            }
        }
        Ok(())
    }

    /// Sets (or unsets) the surface's colour representation and image
    /// description for the commit that follows, and counts the frame
    /// (`colorimetry`: the frame's, for its alpha).
    pub(super) fn apply_colour(&mut self, fourcc: DrmFourcc, colorimetry: &Colorimetry, plan: Plan, via: Via) {
        if self
            .colour_management
            .apply(&self.state, &self.window.surface, &self.qh)
        {
            self.stats.colour_described += 1;
        }
        let told = match (plan, via) {
            (_, Via::Converted) => None,
            (Plan::Tell(c), _) => Some(c),
            _ => None,
        };
        // A converted frame is XRGB8888: no alpha left.
        let alpha = match via {
            Via::Converted => AlphaPlan::Nothing,
            _ => AlphaPlan::of(&self.state.colour, fourcc, colorimetry.alpha),
        };
        self.colour.apply(
            &self.window.surface,
            &self.qh,
            fourcc,
            told,
            alpha == AlphaPlan::Straight,
        );
        match plan {
            Plan::Tell(_) if told.is_some() => self.stats.colour_told += 1,
            Plan::Convert => self.stats.colour_converted += u64::from(via == Via::Converted),
            Plan::Untold { matches: false } => self.stats.colour_uncorrected += 1,
            _ => {}
        }
        match alpha {
            AlphaPlan::Straight => self.stats.alpha_told += 1,
            AlphaPlan::Untold => self.stats.alpha_untold += 1,
            AlphaPlan::Nothing => {}
        }
    }
}

fn coefficients(m: Matrix) -> Coefficients {
    match m {
        Matrix::Bt601 => Coefficients::Bt601,
        Matrix::Bt709 => Coefficients::Bt709,
        Matrix::Bt2020 => Coefficients::Bt2020,
    }
}

fn range(r: Range) -> wp_color_representation_surface_v1::Range {
    match r {
        Range::Full => wp_color_representation_surface_v1::Range::Full,
        Range::Limited => wp_color_representation_surface_v1::Range::Limited,
    }
}

fn chroma_location(h273: u8) -> Option<ChromaLocation> {
    Some(match h273 {
        0 => ChromaLocation::Type0,
        1 => ChromaLocation::Type1,
        2 => ChromaLocation::Type2,
        3 => ChromaLocation::Type3,
        4 => ChromaLocation::Type4,
        5 => ChromaLocation::Type5,
        _ => return None,
    })
}

impl Dispatch<WpColorRepresentationManagerV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &WpColorRepresentationManagerV1,
        event: wp_color_representation_manager_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wp_color_representation_manager_v1::Event;
        let offer = &mut state.colour;
        match event {
            Event::SupportedCoefficientsAndRanges { coefficients, range } => {
                let raw = (u32::from(coefficients), u32::from(range));
                offer.raw_pairs.push(raw);
                let matrix = match coefficients {
                    WEnum::Value(Coefficients::Bt601) => Some(Matrix::Bt601),
                    WEnum::Value(Coefficients::Bt709) => Some(Matrix::Bt709),
                    WEnum::Value(Coefficients::Bt2020) => Some(Matrix::Bt2020),
                    _ => None,
                };
                let range = match range {
                    WEnum::Value(wp_color_representation_surface_v1::Range::Full) => Some(Range::Full),
                    WEnum::Value(wp_color_representation_surface_v1::Range::Limited) => Some(Range::Limited),
                    _ => None,
                };
                if let (Some(m), Some(r)) = (matrix, range)
                    && !offer.pairs.contains(&(m, r))
                {
                    offer.pairs.push((m, r));
                }
            }
            Event::SupportedAlphaMode { alpha_mode } => {
                let name = match alpha_mode {
                    WEnum::Value(AlphaMode::PremultipliedElectrical) => "premultiplied_electrical",
                    WEnum::Value(AlphaMode::PremultipliedOptical) => "premultiplied_optical",
                    WEnum::Value(AlphaMode::Straight) => "straight",
                    _ => "unknown",
                };
                offer.alpha_modes.push(name);
            }
            Event::Done => {}
            _ => {}
        }
    }
}

wayland_client::delegate_noop!(State: ignore WpColorRepresentationSurfaceV1);

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(policy: ColourCorrection) -> ColourRep {
        ColourRep {
            manager: None,
            object: None,
            set: None,
            chroma_sent: false,
            straight_sent: false,
            policy,
        }
    }

    #[test]
    fn straight_alpha_is_told_only_where_listed_and_only_with_alpha() {
        let premultiplied_only = ColourOffer {
            representation: true,
            alpha_modes: vec!["premultiplied_electrical"],
            ..ColourOffer::default()
        };
        let both = ColourOffer {
            representation: true,
            alpha_modes: vec!["premultiplied_electrical", "straight"],
            ..ColourOffer::default()
        };
        let plan = AlphaPlan::of;
        assert_eq!(plan(&both, DrmFourcc::Argb8888, Alpha::Straight), AlphaPlan::Straight);
        assert_eq!(
            plan(&premultiplied_only, DrmFourcc::Argb8888, Alpha::Straight),
            AlphaPlan::Untold
        );
        assert_eq!(
            plan(&ColourOffer::default(), DrmFourcc::Abgr8888, Alpha::Straight),
            AlphaPlan::Untold
        );
        // Premultiplied is the default; unstated says nothing; no alpha
        // channel, nothing to tell.
        assert_eq!(
            plan(&both, DrmFourcc::Argb8888, Alpha::Premultiplied),
            AlphaPlan::Nothing
        );
        assert_eq!(plan(&both, DrmFourcc::Argb8888, Alpha::Unspecified), AlphaPlan::Nothing);
        assert_eq!(plan(&both, DrmFourcc::Xrgb8888, Alpha::Straight), AlphaPlan::Nothing);
        assert_eq!(plan(&both, DrmFourcc::Nv12, Alpha::Straight), AlphaPlan::Nothing);
    }

    #[test]
    fn auto_converts_only_what_the_compositor_would_misread() {
        let none = ColourOffer::default();
        let r = rep(ColourCorrection::Auto);
        // No protocol: BT.601 limited is what such compositors read.
        assert_eq!(
            r.plan(&none, DrmFourcc::Nv12, Colorimetry::BT601, true),
            Plan::Untold { matches: true }
        );
        assert_eq!(r.plan(&none, DrmFourcc::Nv12, Colorimetry::BT709, true), Plan::Convert);
        // Nothing to convert with: sent untold, not matching.
        assert_eq!(
            r.plan(&none, DrmFourcc::Nv12, Colorimetry::BT709, false),
            Plan::Untold { matches: false }
        );
        assert_eq!(r.plan(&none, DrmFourcc::Xrgb8888, Colorimetry::BT709, true), Plan::Rgb);
        // The protocol without the pair: its untold default is unknown.
        let offered = ColourOffer {
            representation: true,
            ..ColourOffer::default()
        };
        assert_eq!(
            r.plan(&offered, DrmFourcc::Nv12, Colorimetry::BT601, true),
            Plan::Convert
        );
        // Listed: told, never converted.
        let listed = ColourOffer {
            representation: true,
            pairs: vec![(Matrix::Bt709, Range::Limited)],
            ..ColourOffer::default()
        };
        assert_eq!(
            r.plan(&listed, DrmFourcc::Nv12, Colorimetry::BT709, true),
            Plan::Tell(Colorimetry::BT709)
        );
        assert_eq!(
            r.plan(&listed, DrmFourcc::Nv12, Colorimetry::BT601, true),
            Plan::Convert
        );
    }

    #[test]
    fn never_and_always() {
        let none = ColourOffer::default();
        assert_eq!(
            rep(ColourCorrection::Never).plan(&none, DrmFourcc::Nv12, Colorimetry::BT709, true),
            Plan::Untold { matches: false }
        );
        assert_eq!(
            rep(ColourCorrection::Always).plan(&none, DrmFourcc::Nv12, Colorimetry::BT601, true),
            Plan::Convert
        );
    }
}
