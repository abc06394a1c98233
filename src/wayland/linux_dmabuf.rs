//! linux-dmabuf: the compositor's format set (v3 events, v4/v5 feedback
//! with its format table) and `wl_buffer`s made from `DmaBuf`s without any
//! request that could be fatal: nothing is sent for a (fourcc, modifier)
//! that was not advertised, and a new kind of buffer is checked with
//! `create` + `created`/`failed` before `create_immed` is used for it.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use drm_fourcc::{DrmFourcc, DrmModifier};
use wayland_client::protocol::{wl_buffer::WlBuffer, wl_surface::WlSurface};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, WEnum, event_created_child};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1::{self, ZwpLinuxBufferParamsV1},
    zwp_linux_dmabuf_feedback_v1::{self, ZwpLinuxDmabufFeedbackV1},
    zwp_linux_dmabuf_v1::{self, ZwpLinuxDmabufV1},
};

use super::error::WaylandError;
use super::formats::{FormatTableError, Tranche, parse_format_table};
use super::presenter::Presenter;
use super::queue::{State, lost};
use crate::dmabuf::{DmaBuf, ModifierName};

/// Highest `zwp_linux_dmabuf_v1` version we bind.
pub const MAX_DMABUF_VERSION: u32 = 5;

/// How long the first import of a new kind of buffer waits for the
/// compositor's `created`/`failed` (one roundtrip; a GPU import on a busy
/// compositor can take a while).
const IMPORT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What decides whether a compositor can import a dma-buf: format,
/// modifier, size, each plane's offset and stride, and whether each plane
/// is a kernel dma-buf (a compositor that imports through a GPU takes
/// udmabuf or GBM buffers but not a memfd, which a CPU-only compositor
/// maps fine).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ImportKind {
    fourcc: DrmFourcc,
    modifier: u64,
    size: (u32, u32),
    planes: Vec<(u32, u32, bool)>,
}

impl ImportKind {
    pub(super) fn of(buf: &DmaBuf) -> Self {
        Self {
            fourcc: buf.fourcc(),
            modifier: buf.modifier().into(),
            size: (buf.width(), buf.height()),
            planes: buf
                .planes()
                .iter()
                .map(|p| (p.offset(), p.stride(), p.is_kernel_dmabuf()))
                .collect(),
        }
    }
}

#[derive(Default)]
pub(crate) struct FeedbackBuilder {
    table: Vec<(u32, u64)>,
    main_device: Option<u64>,
    tranches: Vec<Tranche>,
    current: Tranche,
    error: Option<FormatTableError>,
}

/// A size the protocol carries as `int`; callers checked it fits
/// ([`Presenter::check_extents`]).
fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Asks for the default and the surface's feedback (v4+); the objects are
/// returned so that the presenter destroys them on drop.
pub(super) fn request_feedback(
    dmabuf: &ZwpLinuxDmabufV1,
    surface: &WlSurface,
    qh: &QueueHandle<State>,
    state: &mut State,
) -> Vec<ZwpLinuxDmabufFeedbackV1> {
    if dmabuf.version() < 4 {
        return Vec::new();
    }
    let default = dmabuf.get_default_feedback(qh, ());
    state.feedback.insert(default.id(), FeedbackBuilder::default());
    let per_surface = dmabuf.get_surface_feedback(surface, qh, ());
    state.surface_feedback = Some(per_surface.id());
    state.feedback.insert(per_surface.id(), FeedbackBuilder::default());
    vec![default, per_surface]
}

impl Presenter {
    pub(super) fn check_advertised(&self, buf: &DmaBuf) -> Result<(), WaylandError> {
        if self.state.formats.supports_dmabuf(buf.fourcc(), buf.modifier()) {
            return Ok(());
        }
        let offered = self.state.formats.modifiers(buf.fourcc());
        Err(WaylandError::NotAdvertised {
            fourcc: buf.fourcc(),
            modifier: ModifierName(buf.modifier()),
            version: self.state.formats.dmabuf_version,
            offered: if offered.is_empty() {
                "nothing for this fourcc".into()
            } else {
                offered
                    .iter()
                    .map(|&m| ModifierName(m).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Checks that every plane still fits in its file (a memfd may have
    /// been truncated since the `DmaBuf` was built).
    fn check_sizes(buf: &DmaBuf) -> Result<(), WaylandError> {
        let info = buf.format_info();
        for (i, plane) in buf.planes().iter().enumerate() {
            let Some(format) = info.planes.get(i) else { continue };
            let needed = u64::from(plane.offset()) + u64::from(plane.stride()) * u64::from(format.rows(buf.height()));
            let fd_size = crate::sys::fd_info(plane.fd()).map_err(lost)?.size;
            if needed > fd_size {
                return Err(WaylandError::FdTooSmall {
                    plane: i,
                    needed,
                    fd_size,
                });
            }
        }
        Ok(())
    }

    /// Checks `buf` against what the compositor advertised and the plane
    /// sizes, then fills a params object with its planes (nothing is sent
    /// for a refused buffer).
    fn params_for(&self, buf: &DmaBuf) -> Result<ZwpLinuxBufferParamsV1, WaylandError> {
        let dmabuf = self
            .dmabuf
            .as_ref()
            .ok_or(WaylandError::MissingGlobal("zwp_linux_dmabuf_v1"))?;
        self.check_advertised(buf)?;
        Self::check_sizes(buf)?;
        Self::check_extents(buf)?;
        let params = dmabuf.create_params(&self.qh, ());
        let modifier: u64 = buf.modifier().into();
        for (i, plane) in buf.planes().iter().enumerate() {
            params.add(
                plane.fd(),
                i as u32,
                plane.offset(),
                plane.stride(),
                (modifier >> 32) as u32,
                modifier as u32,
            );
        }
        Ok(params)
    }

    /// A new `wl_buffer` for `buf` with `create` and a wait for `created`
    /// or `failed` (a typed error instead of a fatal protocol error). Not
    /// cached: the caller owns it.
    ///
    /// An answer that comes after `timeout` is still handled: the params
    /// object is kept until it arrives (destroying it first would leave a
    /// late `created` buffer on a dead object, never destroyed on the
    /// compositor's side); the late buffer is then destroyed and its
    /// answer remembered for this kind of buffer (counted in
    /// `late_import_answers`).
    pub fn create_buffer_checked(&mut self, buf: &DmaBuf, timeout: Duration) -> Result<WlBuffer, WaylandError> {
        let params = self.params_for(buf)?;
        params.create(
            int(buf.width()),
            int(buf.height()),
            buf.fourcc() as u32,
            zwp_linux_buffer_params_v1::Flags::empty(),
        );
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if let Some(r) = self.state.created.remove(&params.id()) {
                break r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.state
                    .late_checks
                    .insert(params.id(), (params, ImportKind::of(buf)));
                return Err(WaylandError::Timeout("zwp_linux_buffer_params_v1.created", timeout));
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
        };
        params.destroy();
        outcome.map_err(|()| Self::import_failed(buf))
    }

    /// Applies the answers to checks that had timed out: the kind is
    /// accepted or refused from now on.
    pub(super) fn apply_late_answers(&mut self) {
        for (kind, accepted) in self.state.late_answers.drain(..) {
            self.stats.late_import_answers += 1;
            if !accepted {
                self.stats.import_refusals += 1;
            }
            self.import_kinds.insert(kind, accepted);
        }
    }

    /// What the compositor checks before importing, and answers with a
    /// fatal error: width and height go out as `int`s (a value above
    /// `i32::MAX` arrives negative: `invalid_dimensions`), and each plane's
    /// extents must fit in 32 bits (`out_of_bounds`). Weston checks
    /// `offset + stride` for every plane and `offset + stride * height` for
    /// the first; wlroots `offset + stride` and `stride * height` (the full
    /// height, whatever the plane's subsampling) for every plane and a zero
    /// stride. A buffer over a sparse file larger than 4 GiB passes our
    /// size checks and would fail these: nothing is sent for it.
    fn check_extents(buf: &DmaBuf) -> Result<(), WaylandError> {
        for (what, value) in [("width", buf.width()), ("height", buf.height())] {
            if i32::try_from(value).is_err() {
                return Err(WaylandError::TooLarge {
                    what: what.into(),
                    value: value.into(),
                });
            }
        }
        let height = u64::from(buf.height());
        for (i, plane) in buf.planes().iter().enumerate() {
            let (offset, stride) = (u64::from(plane.offset()), u64::from(plane.stride()));
            if stride == 0 {
                return Err(WaylandError::TooLarge {
                    what: format!("plane {i} stride (zero; wlroots refuses it)"),
                    value: 0,
                });
            }
            let mut checks = vec![
                ("offset + stride", offset + stride),
                ("stride * height", stride * height),
            ];
            if i == 0 {
                checks.push(("offset + stride * height", offset + stride * height));
            }
            for (what, value) in checks {
                if value > u64::from(u32::MAX) {
                    return Err(WaylandError::TooLarge {
                        what: format!("plane {i} {what}"),
                        value,
                    });
                }
            }
        }
        Ok(())
    }

    /// A new `wl_buffer` for `buf`: `create_immed` for a kind of buffer
    /// (format, modifier, layout, fd kind) the compositor has accepted
    /// before; a new kind goes through `create` and waits for `created` or
    /// `failed`, so a buffer the compositor cannot import is a
    /// [`WaylandError::ImportFailed`] (remembered: that kind is not tried
    /// again, and counted in `import_refusals`) instead of a protocol error
    /// that ends the connection.
    pub(super) fn import(&mut self, buf: &DmaBuf) -> Result<WlBuffer, WaylandError> {
        let kind = ImportKind::of(buf);
        match self.import_kinds.get(&kind) {
            Some(true) => {
                let params = self.params_for(buf)?;
                let buffer = params.create_immed(
                    int(buf.width()),
                    int(buf.height()),
                    buf.fourcc() as u32,
                    zwp_linux_buffer_params_v1::Flags::empty(),
                    &self.qh,
                    (),
                );
                params.destroy();
                Ok(buffer)
            }
            Some(false) => Err(Self::import_failed(buf)),
            None => match self.create_buffer_checked(buf, IMPORT_CHECK_TIMEOUT) {
                Ok(buffer) => {
                    self.import_kinds.insert(kind, true);
                    Ok(buffer)
                }
                Err(e @ WaylandError::ImportFailed { .. }) => {
                    self.import_kinds.insert(kind, false);
                    self.stats.import_refusals += 1;
                    Err(e)
                }
                // Not answered in time: this frame goes the wl_shm way,
                // and so do later ones of the kind until the late answer
                // comes (instead of a wait on every frame).
                Err(WaylandError::Timeout(..)) => {
                    self.import_kinds.insert(kind, false);
                    Err(Self::import_failed(buf))
                }
                Err(e) => Err(e),
            },
        }
    }

    pub(super) fn import_failed(buf: &DmaBuf) -> WaylandError {
        WaylandError::ImportFailed {
            fourcc: buf.fourcc(),
            width: buf.width(),
            height: buf.height(),
        }
    }
}

impl Dispatch<ZwpLinuxDmabufV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ZwpLinuxDmabufV1,
        event: zwp_linux_dmabuf_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // v3: the format set arrives as these events (v4+ uses feedback).
        match event {
            zwp_linux_dmabuf_v1::Event::Format { format } => {
                state
                    .formats
                    .dmabuf
                    .entry(format)
                    .or_default()
                    .insert(u64::from(DrmModifier::Invalid));
            }
            zwp_linux_dmabuf_v1::Event::Modifier {
                format,
                modifier_hi,
                modifier_lo,
            } => {
                let m = (u64::from(modifier_hi) << 32) | u64::from(modifier_lo);
                state.formats.dmabuf.entry(format).or_default().insert(m);
            }
            _ => {}
        }
    }
}

/// Maps the feedback's format table read-only and parses it.
fn read_format_table(fd: OwnedFd, size: u32) -> Result<Vec<(u32, u64)>, FormatTableError> {
    let size = size as usize;
    if size == 0 {
        return Ok(Vec::new());
    }
    let actual = rustix::fs::fstat(&fd).map_err(FormatTableError::Read)?.st_size as usize;
    if actual < size {
        return Err(FormatTableError::Truncated {
            announced: size,
            actual,
        });
    }
    if !size.is_multiple_of(16) {
        return Err(FormatTableError::BadSize(size));
    }
    // Copied out with pread, not mapped: the file is the compositor's, and
    // a truncation under a mapping would be SIGBUS on our side; a short
    // read is a truncated table.
    let mut bytes = vec![0u8; size];
    let mut done = 0;
    while done < size {
        match rustix::io::pread(&fd, &mut bytes[done..], done as u64) {
            Ok(0) => {
                return Err(FormatTableError::Truncated {
                    announced: size,
                    actual: done,
                });
            }
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(FormatTableError::Read(e)),
        }
    }
    parse_format_table(&bytes)
}

impl Dispatch<ZwpLinuxDmabufFeedbackV1, ()> for State {
    fn event(
        state: &mut Self,
        feedback: &ZwpLinuxDmabufFeedbackV1,
        event: zwp_linux_dmabuf_feedback_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_linux_dmabuf_feedback_v1::Event as E;
        let id = feedback.id();
        let is_surface = state.surface_feedback.as_ref() == Some(&id);
        let b = state.feedback.entry(id).or_default();
        let dev = |bytes: &[u8]| -> Option<u64> { bytes.try_into().ok().map(u64::from_ne_bytes) };
        match event {
            E::FormatTable { fd, size } => match read_format_table(fd, size) {
                Ok(t) => b.table = t,
                Err(e) => b.error = Some(e),
            },
            E::MainDevice { device } => b.main_device = dev(&device),
            E::TrancheTargetDevice { device } => b.current.target_device = dev(&device),
            E::TrancheFormats { indices } => match super::formats::tranche_formats(&b.table, &indices) {
                Ok(f) => b.current.formats.extend(f),
                Err(e) => b.error = Some(e),
            },
            E::TrancheFlags { flags } => {
                let bits = match flags {
                    WEnum::Value(f) => f.bits(),
                    WEnum::Unknown(u) => u,
                };
                b.current.scanout = bits & 1 != 0;
            }
            E::TrancheDone => {
                let t = std::mem::take(&mut b.current);
                b.tranches.push(t);
            }
            E::Done => {
                if let Some(e) = b.error.take() {
                    state.feedback_error = Some(e);
                    b.tranches.clear();
                    return;
                }
                let tranches = std::mem::take(&mut b.tranches);
                let main_device = b.main_device;
                // The surface's feedback wins over the default one.
                if is_surface || !state.surface_feedback_seen {
                    state.surface_feedback_seen |= is_surface;
                    if state.formats.tranches != tranches || state.formats.main_device != main_device {
                        state.formats.tranches = tranches;
                        state.formats.main_device = main_device;
                        state.formats.merge_tranches();
                        state.formats_changed = true;
                    }
                }
            }
            _ => {}
        }
    }
}

impl Dispatch<ZwpLinuxBufferParamsV1, ()> for State {
    fn event(
        state: &mut Self,
        params: &ZwpLinuxBufferParamsV1,
        event: zwp_linux_buffer_params_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_linux_buffer_params_v1::Event::Created { buffer } => {
                if let Some((params, kind)) = state.late_checks.remove(&params.id()) {
                    buffer.destroy();
                    params.destroy();
                    state.late_answers.push((kind, true));
                } else {
                    state.created.insert(params.id(), Ok(buffer));
                }
            }
            zwp_linux_buffer_params_v1::Event::Failed => {
                if let Some((params, kind)) = state.late_checks.remove(&params.id()) {
                    params.destroy();
                    state.late_answers.push((kind, false));
                } else {
                    state.created.insert(params.id(), Err(()));
                }
            }
            _ => {}
        }
    }

    event_created_child!(State, ZwpLinuxBufferParamsV1, [
        zwp_linux_buffer_params_v1::EVT_CREATED_OPCODE => (WlBuffer, ()),
    ]);
}
