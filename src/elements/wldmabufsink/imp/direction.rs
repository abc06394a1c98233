//! GStreamer's `GstVideoDirection` interface (a `video-direction`
//! property and nothing else), which gstreamer-rs does not wrap for
//! subclasses, and the sink's orientation read from a method or the
//! stream's `image-orientation` tag.

use gstreamer::glib;
use gstreamer::glib::subclass::prelude::*;
use gstreamer_video as gst_video;

use crate::wayland::Orientation;

glib::wrapper! {
    /// `GstVideoDirection`: rotation and flip, as a property.
    pub struct VideoDirection(Interface<gst_video::ffi::GstVideoDirection, gst_video::ffi::GstVideoDirectionInterface>);

    match fn {
        type_ => || gst_video::ffi::gst_video_direction_get_type(),
    }
}

// SAFETY: the interface has no virtual methods (its vtable is the bare
// GTypeInterface), so a subclass implements it by overriding its one
// property, `video-direction`; nothing in the vtable is left unset.
unsafe impl<T: ObjectSubclass> IsImplementable<T> for VideoDirection {}

/// The orientation a method names; `None` for `auto` (the stream's tag
/// decides). `custom` means nothing to a sink: identity.
pub(super) fn orientation_of(method: gst_video::VideoOrientationMethod) -> Option<Orientation> {
    use gst_video::VideoOrientationMethod as M;
    Some(match method {
        M::Auto => return None,
        M::_90r => Orientation::Rotate90,
        M::_180 => Orientation::Rotate180,
        M::_90l => Orientation::Rotate270,
        M::Horiz => Orientation::FlipHorizontal,
        M::Vert => Orientation::FlipVertical,
        M::UlLr => Orientation::FlipUpperLeftLowerRight,
        M::UrLl => Orientation::FlipUpperRightLowerLeft,
        _ => Orientation::Identity,
    })
}
