//! How a frame is placed on screen: its orientation (rotation and flip,
//! sent as `wl_surface.set_buffer_transform`, so the compositor turns the
//! buffer and no pixel is copied), its pixel aspect ratio, and where it
//! goes inside the area it is given (the window the compositor configured,
//! the output when fullscreen, or an application's render rectangle):
//! fitted and centred with borders around it (`force_aspect_ratio`), or
//! stretched over the whole area. Pure geometry; the [`Presenter`]
//! applies it on every commit.
//!
//! [`Presenter`]: super::Presenter

/// A rotation or flip of the video, named as GStreamer's
/// `GstVideoOrientationMethod` (rotations are clockwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Orientation {
    /// As decoded.
    #[default]
    Identity,
    /// Turned 90 degrees clockwise.
    Rotate90,
    /// Turned 180 degrees.
    Rotate180,
    /// Turned 90 degrees counter-clockwise (270 clockwise).
    Rotate270,
    /// Mirrored left to right.
    FlipHorizontal,
    /// Mirrored top to bottom.
    FlipVertical,
    /// Mirrored across the diagonal from the upper left to the lower
    /// right corner (a transpose).
    FlipUpperLeftLowerRight,
    /// Mirrored across the diagonal from the upper right to the lower
    /// left corner.
    FlipUpperRightLowerLeft,
}

impl Orientation {
    /// Whether width and height trade places on screen.
    pub fn swaps_axes(self) -> bool {
        matches!(
            self,
            Orientation::Rotate90
                | Orientation::Rotate270
                | Orientation::FlipUpperLeftLowerRight
                | Orientation::FlipUpperRightLowerLeft
        )
    }

    /// The orientation an `image-orientation` tag asks for (GStreamer's
    /// `GST_TAG_IMAGE_ORIENTATION`: `rotate-0|90|180|270`,
    /// `flip-rotate-0|90|180|270`, read as `videoflip`'s `auto` method
    /// reads them); `None` for any other value.
    pub fn from_image_orientation(tag: &str) -> Option<Self> {
        Some(match tag {
            "rotate-0" => Orientation::Identity,
            "rotate-90" => Orientation::Rotate90,
            "rotate-180" => Orientation::Rotate180,
            "rotate-270" => Orientation::Rotate270,
            "flip-rotate-0" => Orientation::FlipHorizontal,
            "flip-rotate-90" => Orientation::FlipUpperLeftLowerRight,
            "flip-rotate-180" => Orientation::FlipVertical,
            "flip-rotate-270" => Orientation::FlipUpperRightLowerLeft,
            _ => return None,
        })
    }

    /// Where the buffer's pixel (x, y) of a `w`x`h` frame lands on screen
    /// (before scaling): the reference the compositor's
    /// `set_buffer_transform` is checked against.
    pub fn map(self, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
        let (sx, sy) = self.turn(f64::from(x) + 0.5, f64::from(y) + 0.5, f64::from(w), f64::from(h));
        (sx as u32, sy as u32)
    }

    /// The inverse of [`map`](Self::map): the buffer pixel shown at
    /// screen pixel (x, y) of the turned frame (`w` and `h` are the
    /// buffer's).
    pub fn unmap(self, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
        let (bx, by) = self.unturn(f64::from(x) + 0.5, f64::from(y) + 0.5, f64::from(w), f64::from(h));
        (bx as u32, by as u32)
    }

    /// [`map`](Self::map) on continuous coordinates in `[0, w) x [0, h)`.
    fn turn(self, x: f64, y: f64, w: f64, h: f64) -> (f64, f64) {
        let (r, b) = (w - x, h - y);
        match self {
            Orientation::Identity => (x, y),
            Orientation::Rotate90 => (b, x),
            Orientation::Rotate180 => (r, b),
            Orientation::Rotate270 => (y, r),
            Orientation::FlipHorizontal => (r, y),
            Orientation::FlipVertical => (x, b),
            Orientation::FlipUpperLeftLowerRight => (y, x),
            Orientation::FlipUpperRightLowerLeft => (b, r),
        }
    }

    /// [`unmap`](Self::unmap) on continuous coordinates.
    fn unturn(self, x: f64, y: f64, w: f64, h: f64) -> (f64, f64) {
        let inverse = match self {
            Orientation::Rotate90 => Orientation::Rotate270,
            Orientation::Rotate270 => Orientation::Rotate90,
            other => other,
        };
        let (sw, sh) = if self.swaps_axes() { (h, w) } else { (w, h) };
        inverse.turn(x, y, sw, sh)
    }
}

/// How frames are placed; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Rotation or flip.
    pub orientation: Orientation,
    /// The stream's pixel aspect ratio (numerator, denominator; 1/1 is
    /// square pixels; a zero is read as 1/1).
    pub pixel_aspect_ratio: (u32, u32),
    /// Keep the picture's shape inside a larger area (borders around
    /// it); false stretches it over the whole area.
    pub force_aspect_ratio: bool,
}

impl Default for View {
    fn default() -> Self {
        Self {
            orientation: Orientation::Identity,
            pixel_aspect_ratio: (1, 1),
            force_aspect_ratio: true,
        }
    }
}

/// A rectangle in surface coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width (at least 1).
    pub width: u32,
    /// Height (at least 1).
    pub height: u32,
}

/// Where one frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The whole area (borders included), from (0, 0).
    pub area: (u32, u32),
    /// The video inside it.
    pub video: Rect,
}

impl View {
    /// The frame's size on screen at scale 1: the buffer's size with the
    /// pixel aspect ratio applied to its width, then turned.
    pub fn natural_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (n, d) = match self.pixel_aspect_ratio {
            (0, _) | (_, 0) => (1, 1),
            par => par,
        };
        let w =
            ((u64::from(width) * u64::from(n) + u64::from(d) / 2) / u64::from(d)).clamp(1, u64::from(i32::MAX as u32));
        let (w, h) = (w as u32, height.max(1));
        if self.orientation.swaps_axes() { (h, w) } else { (w, h) }
    }

    /// Where a `width`x`height` buffer goes inside `area` (`None`: the
    /// frame's natural size, no borders).
    pub fn layout(&self, width: u32, height: u32, area: Option<(u32, u32)>) -> Layout {
        let natural = self.natural_size(width, height);
        let area = area.map_or(natural, |(w, h)| (w.max(1), h.max(1)));
        let (w, h) = if self.force_aspect_ratio {
            fit(natural.0, natural.1, area.0, area.1)
        } else {
            area
        };
        Layout::centred(area, w, h)
    }
}

impl Layout {
    /// A `width`x`height` video centred in `area` (the caller sizes the
    /// video to fit; a larger one starts at the corner).
    pub fn centred(area: (u32, u32), width: u32, height: u32) -> Self {
        Layout {
            area,
            video: Rect {
                x: (area.0.saturating_sub(width) / 2) as i32,
                y: (area.1.saturating_sub(height) / 2) as i32,
                width,
                height,
            },
        }
    }
    /// Where `rect`, in the pixels of a `width`x`height` buffer turned by
    /// `orientation` (an overlay drawn for that frame: a subtitle), lands
    /// on the video surface: turned as the frame is, then scaled as the
    /// frame is to the video's size. Relative to the video surface's
    /// corner; at least 1x1.
    pub fn place_in_video(&self, rect: Rect, width: u32, height: u32, orientation: Orientation) -> Rect {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let (x0, y0) = (f64::from(rect.x), f64::from(rect.y));
        let (x1, y1) = (x0 + f64::from(rect.width), y0 + f64::from(rect.height));
        let (ax, ay) = orientation.turn(x0, y0, w, h);
        let (bx, by) = orientation.turn(x1, y1, w, h);
        let (sw, sh) = if orientation.swaps_axes() { (h, w) } else { (w, h) };
        let (kx, ky) = (f64::from(self.video.width) / sw, f64::from(self.video.height) / sh);
        let (left, top) = (ax.min(bx) * kx, ay.min(by) * ky);
        let (right, bottom) = (ax.max(bx) * kx, ay.max(by) * ky);
        let clamp = |v: f64| v.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
        let (l, t) = (clamp(left), clamp(top));
        Rect {
            x: l,
            y: t,
            width: (clamp(right) - l).max(1) as u32,
            height: (clamp(bottom) - t).max(1) as u32,
        }
    }

    /// The buffer pixel under surface point (x, y) of the area, for a
    /// `width`x`height` buffer turned by `orientation`; `None` on the
    /// borders.
    pub fn to_buffer(&self, x: f64, y: f64, width: u32, height: u32, orientation: Orientation) -> Option<(f64, f64)> {
        let v = self.video;
        let (vx, vy) = (x - f64::from(v.x), y - f64::from(v.y));
        if vx < 0.0 || vy < 0.0 || vx >= f64::from(v.width) || vy >= f64::from(v.height) {
            return None;
        }
        let (sw, sh) = if orientation.swaps_axes() {
            (height, width)
        } else {
            (width, height)
        };
        // Into the turned frame's pixels, then back through the turn.
        let (tx, ty) = (
            vx * f64::from(sw) / f64::from(v.width),
            vy * f64::from(sh) / f64::from(v.height),
        );
        Some(orientation.unturn(tx, ty, f64::from(width), f64::from(height)))
    }
}

/// The largest `w`x`h` with the source's aspect ratio inside the box.
pub fn fit(src_w: u32, src_h: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    if src_w == 0 || src_h == 0 {
        return (box_w.max(1), box_h.max(1));
    }
    // Rounded to the nearest pixel.
    let scaled =
        |a: u32, num: u32, den: u32| ((u64::from(a) * u64::from(num) + u64::from(den) / 2) / u64::from(den)) as u32;
    let by_width = (box_w, scaled(box_w, src_h, src_w));
    if by_width.1 <= box_h {
        (by_width.0.max(1), by_width.1.max(1))
    } else {
        (scaled(box_h, src_w, src_h).max(1), box_h.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_follows_the_frames_turn_and_scale() {
        // A 320x240 frame shown at 640x480 (twice its size) at (10, 20).
        let layout = Layout {
            area: (660, 500),
            video: Rect {
                x: 10,
                y: 20,
                width: 640,
                height: 480,
            },
        };
        let subtitle = Rect {
            x: 40,
            y: 200,
            width: 240,
            height: 30,
        };
        // Relative to the video surface, twice as large.
        assert_eq!(
            layout.place_in_video(subtitle, 320, 240, Orientation::Identity),
            Rect {
                x: 80,
                y: 400,
                width: 480,
                height: 60
            }
        );
        // Turned half a turn: the bottom band moves to the top, mirrored.
        assert_eq!(
            layout.place_in_video(subtitle, 320, 240, Orientation::Rotate180),
            Rect {
                x: 80,
                y: 20,
                width: 480,
                height: 60
            }
        );
        // A quarter turn clockwise on a 240x320 video: the bottom band of
        // the buffer becomes the left band of the screen.
        let turned = Layout {
            area: (240, 320),
            video: Rect {
                x: 0,
                y: 0,
                width: 240,
                height: 320,
            },
        };
        assert_eq!(
            turned.place_in_video(subtitle, 320, 240, Orientation::Rotate90),
            Rect {
                x: 10,
                y: 40,
                width: 30,
                height: 240
            }
        );
        // Every corner of the result maps back into the rectangle.
        for o in [Orientation::Rotate90, Orientation::FlipUpperRightLowerLeft] {
            let r = turned.place_in_video(subtitle, 320, 240, o);
            let (bx, by) = turned
                .to_buffer(f64::from(r.x) + 0.5, f64::from(r.y) + 0.5, 320, 240, o)
                .unwrap();
            assert!(
                (40.0..280.0).contains(&bx) && (200.0..230.0).contains(&by),
                "{o:?}: {bx},{by}"
            );
        }
    }

    const ALL: [Orientation; 8] = [
        Orientation::Identity,
        Orientation::Rotate90,
        Orientation::Rotate180,
        Orientation::Rotate270,
        Orientation::FlipHorizontal,
        Orientation::FlipVertical,
        Orientation::FlipUpperLeftLowerRight,
        Orientation::FlipUpperRightLowerLeft,
    ];

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        assert_eq!(fit(320, 240, 640, 480), (640, 480));
        assert_eq!(fit(320, 240, 1024, 480), (640, 480));
        assert_eq!(fit(320, 240, 640, 1000), (640, 480));
        assert_eq!(fit(1920, 1080, 320, 240), (320, 180));
        assert_eq!(fit(0, 0, 10, 10), (10, 10));
    }

    #[test]
    fn orientations_move_the_corners_as_named() {
        // A 4x2 frame: its top-left and top-right pixels.
        let (w, h) = (4, 2);
        let corners = |o: Orientation| (o.map(0, 0, w, h), o.map(w - 1, 0, w, h));
        // Clockwise: the top-left goes to the top-right of a 2x4 picture.
        assert_eq!(corners(Orientation::Rotate90), ((1, 0), (1, 3)));
        assert_eq!(corners(Orientation::Rotate270), ((0, 3), (0, 0)));
        assert_eq!(corners(Orientation::Rotate180), ((3, 1), (0, 1)));
        assert_eq!(corners(Orientation::FlipHorizontal), ((3, 0), (0, 0)));
        assert_eq!(corners(Orientation::FlipVertical), ((0, 1), (3, 1)));
        assert_eq!(corners(Orientation::FlipUpperLeftLowerRight), ((0, 0), (0, 3)));
        assert_eq!(corners(Orientation::FlipUpperRightLowerLeft), ((1, 3), (1, 0)));
    }

    #[test]
    fn unmap_inverts_map_for_every_orientation() {
        let (w, h) = (5, 3);
        for o in ALL {
            let (sw, sh) = if o.swaps_axes() { (h, w) } else { (w, h) };
            for y in 0..h {
                for x in 0..w {
                    let (sx, sy) = o.map(x, y, w, h);
                    assert!(sx < sw && sy < sh, "{o:?}");
                    assert_eq!(o.unmap(sx, sy, w, h), (x, y), "{o:?}");
                }
            }
        }
    }

    #[test]
    fn image_orientation_tags_follow_videoflip() {
        assert_eq!(
            Orientation::from_image_orientation("rotate-90"),
            Some(Orientation::Rotate90)
        );
        assert_eq!(
            Orientation::from_image_orientation("flip-rotate-90"),
            Some(Orientation::FlipUpperLeftLowerRight)
        );
        assert_eq!(Orientation::from_image_orientation("sideways"), None);
    }

    #[test]
    fn layouts_fit_centre_stretch_and_turn() {
        let v = View::default();
        // No area: the natural size, no borders.
        assert_eq!(
            v.layout(320, 240, None),
            Layout {
                area: (320, 240),
                video: Rect {
                    x: 0,
                    y: 0,
                    width: 320,
                    height: 240
                }
            }
        );
        // 16:9 in 4:3: letterboxed, centred.
        let l = v.layout(320, 180, Some((320, 240)));
        assert_eq!((l.video.x, l.video.y, l.video.width, l.video.height), (0, 30, 320, 180));
        // Anamorphic 4:3 pixels make 320x240 a 427x240 picture.
        let par = View {
            pixel_aspect_ratio: (4, 3),
            ..v
        };
        assert_eq!(par.natural_size(320, 240), (427, 240));
        let l = par.layout(320, 240, Some((320, 240)));
        assert_eq!((l.video.y, l.video.width, l.video.height), (30, 320, 180));
        // Turned: a 320x180 frame stands 180x320, pillarboxed in 320x240.
        let turned = View {
            orientation: Orientation::Rotate90,
            ..v
        };
        let l = turned.layout(320, 180, Some((320, 240)));
        assert_eq!((l.video.x, l.video.y, l.video.width, l.video.height), (92, 0, 135, 240));
        // Stretched: the whole area.
        let stretched = View {
            force_aspect_ratio: false,
            ..v
        };
        let l = stretched.layout(320, 180, Some((640, 480)));
        assert_eq!((l.video.x, l.video.y, l.video.width, l.video.height), (0, 0, 640, 480));
        // A zero ratio is read as square pixels.
        let zero = View {
            pixel_aspect_ratio: (0, 1),
            ..v
        };
        assert_eq!(zero.natural_size(320, 240), (320, 240));
    }

    #[test]
    fn surface_points_go_back_to_buffer_pixels() {
        let turned = View {
            orientation: Orientation::Rotate90,
            ..View::default()
        };
        let l = turned.layout(320, 180, Some((320, 240)));
        // Borders are nobody's pixels.
        assert_eq!(l.to_buffer(10.0, 100.0, 320, 180, Orientation::Rotate90), None);
        // The top-right corner of the turned picture is the buffer's
        // top-left pixel.
        let (x, y) = l
            .to_buffer(
                f64::from(l.video.x as u32 + l.video.width) - 0.5,
                0.5,
                320,
                180,
                Orientation::Rotate90,
            )
            .unwrap();
        assert!(x < 2.0 && y < 2.0, "({x}, {y})");
        // The centre stays the centre.
        let (x, y) = l.to_buffer(160.0, 120.0, 320, 180, Orientation::Rotate90).unwrap();
        assert!((x - 160.0).abs() < 2.0 && (y - 90.0).abs() < 2.0, "({x}, {y})");
    }
}
