//! What the presenter counts ([`PresentStats`]) and how each frame went
//! out ([`Presented`], [`Via`]): plain data a player shows and tests assert.

use super::sync::SyncMode;

/// Counters a player shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresentStats {
    /// Frames committed.
    pub presented: u64,
    /// Commits that carried a target time (`wp_commit_timer_v1`).
    pub timed_commits: u64,
    /// How commits are paced now.
    pub pacing: super::Pacing,
    /// Of those, shown without a copy: linux-dmabuf `wl_buffer`s, and
    /// `wl_shm` buffers over the frame's own memory (`shm_zero_copy`).
    pub zero_copy: u64,
    /// Of the zero-copy frames, those sent as `wl_shm` buffers over the
    /// frame's own memory (a memfd or udmabuf the compositor maps), where
    /// linux-dmabuf is missing or refused the kind.
    pub shm_zero_copy: u64,
    /// Of those, copied into `wl_shm`.
    pub copies: u64,
    /// Of the copies, those converted on the CPU into XRGB8888 (the
    /// compositor takes the format neither as a dma-buf nor by `wl_shm`).
    pub converted: u64,
    /// Kinds of buffer the compositor accepted (`created`) but never
    /// showed (no frame callback within [`NEVER_SHOWN_TIMEOUT`](super::NEVER_SHOWN_TIMEOUT) of the window being painted): demoted
    /// like refusals (and counted in `import_refusals` too).
    pub never_shown: u64,
    /// Never-shown demotions taken back because the `wl_shm` commit after
    /// them was not shown either: the window was not painted at all
    /// (minimised, covered by a fullscreen or kiosk window), no fault of
    /// the buffer kind.
    pub hidden_restores: u64,
    /// Overlay sets uploaded (`Presenter::set_overlays` with a new key:
    /// a subtitle that stays on screen counts once).
    pub overlay_sets: u64,
    /// Answers to import checks that came after their wait had given up
    /// (the late `wl_buffer` destroyed, the answer kept for its kind).
    pub late_import_answers: u64,
    /// `wl_buffer`s created for dma-bufs (cache misses).
    pub wl_buffers_created: u64,
    /// Frames that reused a cached `wl_buffer`.
    pub cache_hits: u64,
    /// Frames whose buffer the compositor had not released yet when it
    /// came back: a producer wrote into a buffer still on screen. Must stay 0.
    pub reused_before_release: u64,
    /// `wl_buffer.release` events received.
    pub releases: u64,
    /// Kinds of buffer (format, modifier, layout, fd kind) the compositor
    /// refused with `failed`; frames of those kinds go the `wl_shm` way.
    pub import_refusals: u64,
    /// How frames are synchronised with the compositor.
    pub sync: SyncMode,
    /// Commits that carried explicit sync (acquire and release points, or
    /// an acquire fence and a release object).
    pub explicit_sync_commits: u64,
    /// Buffers handed back by explicit sync: their release point
    /// signalled, or their release event came and its fence signalled, or
    /// they were taken back with that fence (`Presenter::take_release`).
    pub release_points_signalled: u64,
    /// YUV frames committed with their matrix and range told to the
    /// compositor (`wp_color_representation_v1`).
    pub colour_told: u64,
    /// YUV frames converted to RGB because the compositor could not be
    /// told their matrix and range and would misread them (also counted
    /// in `converted`; see [`ColourCorrection`](super::ColourCorrection)).
    pub colour_converted: u64,
    /// YUV frames sent neither told nor converted whose matrix and range
    /// differ from what the compositor is assumed to read (no conversion
    /// path, or `ColourCorrection::Never`): shown with wrong colours.
    pub colour_uncorrected: u64,
    /// Frames with straight alpha told so (`wp_color_representation_v1`
    /// alpha mode `straight`).
    pub alpha_told: u64,
    /// Frames with straight alpha the compositor lists no `straight` for:
    /// sent as they are, read as premultiplied (translucent pixels show
    /// brighter than meant).
    pub alpha_untold: u64,
    /// Frames committed with a `wp_color_management_v1` image description
    /// (the stream's transfer function and primaries, HDR10 metadata).
    pub colour_described: u64,
    /// Image descriptions the compositor answered `failed` for.
    pub colour_description_failures: u64,
    /// Commits the compositor says it presented (`wp_presentation`
    /// feedback; see [`FrameTiming`](super::FrameTiming)).
    pub feedback_presented: u64,
    /// Commits it says it discarded (a later one replaced them first).
    pub feedback_discarded: u64,
    /// Of the presented ones, those with the `zero_copy` flag (scanned
    /// out, or shown with no copy by the compositor).
    pub feedback_zero_copy: u64,
}

/// How a frame went out: the path it took and, for the two zero-copy
/// paths, whether its `wl_buffer` came from the cache (a copy always
/// goes into a fresh pool buffer, so it has no cache to hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// A linux-dmabuf `wl_buffer` (zero copy).
    LinuxDmabuf {
        /// The `wl_buffer` came from the cache.
        cached: bool,
    },
    /// A `wl_shm` buffer over the frame's own memory (zero copy).
    ShmZeroCopy {
        /// The `wl_buffer` came from the cache.
        cached: bool,
    },
    /// Copied into a `wl_shm` buffer of the same format.
    ShmCopy,
    /// Converted on the CPU into an XRGB8888 `wl_shm` buffer.
    Converted,
}

/// The paths a frame can take to the compositor, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A linux-dmabuf `wl_buffer` (zero copy).
    LinuxDmabuf,
    /// A `wl_shm` buffer over the frame's own memory (zero copy).
    ShmZeroCopy,
    /// Copied into a `wl_shm` buffer of the same format.
    ShmCopy,
    /// Converted on the CPU into an XRGB8888 `wl_shm` buffer.
    Converted,
}

impl Presented {
    /// The path the frame took.
    pub fn via(&self) -> Via {
        match self {
            Self::LinuxDmabuf { .. } => Via::LinuxDmabuf,
            Self::ShmZeroCopy { .. } => Via::ShmZeroCopy,
            Self::ShmCopy => Via::ShmCopy,
            Self::Converted => Via::Converted,
        }
    }

    /// The `wl_buffer` came from the cache (only ever on a zero-copy path).
    pub fn cache_hit(&self) -> bool {
        matches!(
            self,
            Self::LinuxDmabuf { cached: true } | Self::ShmZeroCopy { cached: true }
        )
    }

    /// No copy: [`Via::LinuxDmabuf`] or [`Via::ShmZeroCopy`].
    pub fn zero_copy(&self) -> bool {
        matches!(self, Self::LinuxDmabuf { .. } | Self::ShmZeroCopy { .. })
    }
}
