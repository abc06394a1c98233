//! Overlays above the video: subtitles, a logo, an on-screen display
//! (what GStreamer calls a `GstVideoOverlayComposition`), shown without
//! touching the frame's pixels, so the video stays zero-copy.
//!
//! Each image is an ARGB8888 (premultiplied) `wl_shm` buffer on its own
//! subsurface of the video surface: synchronized with it, so a new set of
//! overlays appears with the next frame's commit, never before or after
//! it; placed and scaled by the frame's layout (turned with the frame,
//! through the same buffer transform) and laid out again with it on every
//! configure, view or render-rectangle change; taking no input. A set is
//! identified by the caller's key: the same key again costs nothing, so a
//! subtitle that stays on screen is uploaded once.

use std::os::fd::AsFd;

use wayland_client::Proxy;
use wayland_client::protocol::{wl_buffer::WlBuffer, wl_shm, wl_subsurface::WlSubsurface, wl_surface::WlSurface};
use wayland_protocols::wp::viewporter::client::wp_viewport::WpViewport;

use super::error::{ShmError, WaylandError};
use super::presenter::Presenter;
use super::view::{Layout, Orientation, Rect};
use super::window::{NotAFrame, clamp_i32, transform};

/// One overlay image for [`Presenter::set_overlays`].
#[derive(Debug, Clone, Copy)]
pub struct OverlayImage<'a> {
    /// Rows of premultiplied ARGB8888 pixels (`wl_shm`'s ARGB8888: B, G,
    /// R, A in memory; GStreamer's overlay ARGB), `stride` bytes apart.
    pub pixels: &'a [u8],
    /// The image's own size in pixels.
    pub width: u32,
    /// The image's own size in pixels.
    pub height: u32,
    /// Bytes from one row to the next (at least `4 * width`).
    pub stride: u32,
    /// Where it goes, in the pixels of the frame it was drawn for (before
    /// the frame is turned or scaled); the image is scaled to fit.
    pub rect: Rect,
}

/// One image on screen.
struct Overlay {
    surface: WlSurface,
    subsurface: WlSubsurface,
    viewport: Option<WpViewport>,
    buffer: WlBuffer,
    rect: Rect,
}

impl Overlay {
    fn destroy(&self) {
        if let Some(v) = &self.viewport {
            v.destroy();
        }
        self.subsurface.destroy();
        self.surface.destroy();
        self.buffer.destroy();
    }
}

/// Where the overlays were last placed: the frame's layout, size and
/// turn.
type Placement = (Layout, u32, u32, Orientation);

/// The overlays shown now, and the key of their set.
#[derive(Default)]
pub(super) struct Overlays {
    items: Vec<Overlay>,
    key: Option<u64>,
    /// None when the set changed since (every overlay is placed again).
    placed: Option<Placement>,
}

impl Overlays {
    /// Destroys every overlay object (children of the video surface: before
    /// it).
    pub(super) fn destroy(&mut self) {
        for o in self.items.drain(..) {
            o.destroy();
        }
        self.key = None;
        self.placed = None;
    }

    /// Places every overlay for a `width`x`height` frame laid out by
    /// `layout`, turned by `orientation` (committed with the video
    /// surface: the overlays are its synchronized children). Nothing when
    /// neither the set nor the placement changed: a synchronized child
    /// keeps its state across its parent's commits, so frames that keep
    /// their layout send no overlay request.
    pub(super) fn place(&mut self, layout: &Layout, width: u32, height: u32, orientation: Orientation) {
        let placement = (*layout, width, height, orientation);
        if self.placed == Some(placement) {
            return;
        }
        self.placed = Some(placement);
        for o in &self.items {
            let r = layout.place_in_video(o.rect, width, height, orientation);
            o.subsurface.set_position(r.x, r.y);
            if o.surface.version() >= 2 {
                o.surface.set_buffer_transform(transform(orientation));
            }
            if let Some(v) = &o.viewport {
                v.set_destination(clamp_i32(r.width), clamp_i32(r.height));
            }
            o.surface.commit();
        }
    }
}

impl Presenter {
    /// Shows `images` above the video from the next frame's commit on (or
    /// with the next relayout), replacing the set shown before; an empty
    /// slice removes them. `key` names the set (GStreamer: the
    /// composition's seqnum): calling again with the key asked for last
    /// does nothing. An image whose pixels are shorter than its size says,
    /// or whose size does not fit `wl_shm`'s int32, is a typed
    /// [`ShmError`] before any request: the set shown before goes, and the
    /// failed key is not tried again (a stream repeats its composition on
    /// every frame).
    pub fn set_overlays(&mut self, key: u64, images: &[OverlayImage<'_>]) -> Result<(), WaylandError> {
        if images.is_empty() {
            self.clear_overlays();
            return Ok(());
        }
        if self.overlays.key == Some(key) {
            return Ok(());
        }
        let checked = self
            .shm
            .clone()
            .ok_or(WaylandError::MissingGlobal("wl_shm (overlays)"))
            .and_then(|shm| {
                images.iter().try_for_each(check)?;
                Ok(shm)
            });
        let shm = match checked {
            Ok(shm) => shm,
            Err(e) => {
                self.overlays.destroy();
                self.overlays.key = Some(key);
                return Err(e);
            }
        };
        let mut made = Vec::with_capacity(images.len());
        for image in images {
            match self.overlay_buffer(&shm, image) {
                Ok(buffer) => made.push((buffer, image.rect)),
                Err(e) => {
                    for (b, _) in made {
                        b.destroy();
                    }
                    return Err(e);
                }
            }
        }
        // Surfaces already shown take their new image with the next commit
        // (no repaint without text between two subtitles); their old
        // buffers go now, which is allowed: their storage is never written
        // again. Surfaces beyond the new set go, missing ones are made.
        let extra = self.overlays.items.len().saturating_sub(made.len());
        for o in self.overlays.items.drain(self.overlays.items.len() - extra..) {
            o.destroy();
        }
        for (i, (buffer, rect)) in made.into_iter().enumerate() {
            if let Some(o) = self.overlays.items.get_mut(i) {
                o.surface.attach(Some(&buffer), 0, 0);
                o.surface.damage(0, 0, i32::MAX, i32::MAX);
                std::mem::replace(&mut o.buffer, buffer).destroy();
                o.rect = rect;
                continue;
            }
            let surface = self.compositor.create_surface(&self.qh, ());
            let subsurface = self
                .window
                .subcompositor
                .get_subsurface(&surface, &self.window.surface, &self.qh, ());
            let region = self.compositor.create_region(&self.qh, ());
            surface.set_input_region(Some(&region));
            region.destroy();
            let viewport = self.viewporter.as_ref().map(|v| v.get_viewport(&surface, &self.qh, ()));
            surface.attach(Some(&buffer), 0, 0);
            surface.damage(0, 0, i32::MAX, i32::MAX);
            self.overlays.items.push(Overlay {
                surface,
                subsurface,
                viewport,
                buffer,
                rect,
            });
        }
        self.overlays.key = Some(key);
        self.overlays.placed = None;
        self.place_overlays();
        self.stats.overlay_sets += 1;
        Ok(())
    }

    /// Removes every overlay, at once (a destroyed subsurface is unmapped
    /// immediately, not with the next commit).
    pub fn clear_overlays(&mut self) {
        if !self.overlays.items.is_empty() {
            self.overlays.destroy();
        }
    }

    /// The key of the overlay set asked for last (shown, or failed and not
    /// retried); None when there are no overlays.
    pub fn overlay_key(&self) -> Option<u64> {
        self.overlays.key
    }

    /// How many overlay images are shown now.
    pub fn overlay_count(&self) -> usize {
        self.overlays.items.len()
    }

    /// Places the overlays for the last frame's layout (nothing before the
    /// first frame: they are placed with it).
    pub(super) fn place_overlays(&mut self) {
        if let (Some((w, h)), Some((layout, orientation))) = (self.last_frame, self.window.applied()) {
            self.overlays.place(&layout, w, h, orientation);
        }
    }

    /// A `wl_shm` buffer holding `image`'s pixels (rows packed), in a
    /// memfd of its own written with `pwrite` (no mapping of ours); the
    /// pool goes at once, the buffer lives as long as the overlay.
    fn overlay_buffer(&self, shm: &wl_shm::WlShm, image: &OverlayImage<'_>) -> Result<WlBuffer, WaylandError> {
        let row = image.width as usize * 4;
        let len = row * image.height as usize;
        let err = |op| move |source| ShmError::Memfd { op, source };
        let fd = rustix::fs::memfd_create("dmabuf-interop-overlay", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(err("memfd_create"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(err("ftruncate"))?;
        for y in 0..image.height as usize {
            let start = y * image.stride as usize;
            let mut src = &image.pixels[start..start + row];
            let mut at = (y * row) as u64;
            while !src.is_empty() {
                let n = rustix::io::pwrite(&fd, src, at).map_err(err("pwrite"))?;
                src = &src[n..];
                at += n as u64;
            }
        }
        // `check` bounded every value to int32.
        let pool = shm.create_pool(fd.as_fd(), len as i32, &self.qh, ());
        let buffer = pool.create_buffer(
            0,
            image.width as i32,
            image.height as i32,
            row as i32,
            wl_shm::Format::Argb8888,
            &self.qh,
            NotAFrame,
        );
        pool.destroy();
        Ok(buffer)
    }
}

/// An image's size fits `wl_shm` (int32) and its pixels hold every row.
fn check(image: &OverlayImage<'_>) -> Result<(), WaylandError> {
    let bytes = u64::from(image.width) * 4 * u64::from(image.height);
    let too_large = ShmError::TooLarge {
        width: image.width,
        height: image.height,
        bytes,
    };
    if image.width == 0 || image.height == 0 || bytes > i32::MAX as u64 {
        return Err(too_large.into());
    }
    let row = image.width as usize * 4;
    let needed = (image.height as usize - 1)
        .checked_mul(image.stride as usize)
        .and_then(|n| n.checked_add(row));
    if (image.stride as usize) < row || needed.is_none_or(|n| image.pixels.len() < n) {
        return Err(ShmError::Short {
            plane: 0,
            got: image.pixels.len(),
            rows: image.height as usize,
            stride: image.stride as usize,
        }
        .into());
    }
    Ok(())
}
