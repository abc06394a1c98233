//! What the compositor accepts: the linux-dmabuf format set (v3 format /
//! modifier events, or v4+ feedback with its format table and tranches) and
//! the `wl_shm` formats.

use std::collections::{BTreeMap, BTreeSet};

use drm_fourcc::{DrmFourcc, DrmModifier};

/// One feedback tranche: formats a device prefers, in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tranche {
    /// `dev_t` of the device the compositor wants the buffers for.
    pub target_device: Option<u64>,
    /// The buffers may be scanned out directly (a KMS plane) when they use
    /// these formats.
    pub scanout: bool,
    /// (fourcc code, modifier) pairs, from the format table.
    pub formats: Vec<(u32, u64)>,
}

/// Why a feedback format table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatTableError {
    /// The table's size is not a whole number of 16-byte entries.
    #[error("format table of {0} bytes is not a whole number of 16-byte entries")]
    BadSize(usize),
    /// The mapped file is smaller than the size the compositor announced.
    #[error("format table announced as {announced} bytes but the file has {actual}")]
    Truncated {
        /// What the `format_table` event said.
        announced: usize,
        /// What the fd holds.
        actual: usize,
    },
    /// A tranche names an entry past the end of the table.
    #[error("tranche index {index} is past the end of the {len}-entry format table")]
    IndexOutOfRange {
        /// The index given.
        index: u16,
        /// Entries in the table.
        len: usize,
    },
    /// The tranche index array has an odd number of bytes.
    #[error("tranche index array of {0} bytes (indices are 16-bit)")]
    OddIndexArray(usize),
    /// Reading the table (fstat, pread) failed.
    #[error("cannot read the format table")]
    Read(#[source] rustix::io::Errno),
}

/// Parses a linux-dmabuf feedback format table: 16-byte entries of
/// `u32 format, u32 padding, u64 modifier` in native byte order.
pub fn parse_format_table(bytes: &[u8]) -> Result<Vec<(u32, u64)>, FormatTableError> {
    if !bytes.len().is_multiple_of(16) {
        return Err(FormatTableError::BadSize(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|e| {
            let format = u32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            let modifier = u64::from_ne_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]);
            (format, modifier)
        })
        .collect())
}

/// Looks up a tranche's `formats` array (16-bit indices, native order) in
/// the table.
pub fn tranche_formats(table: &[(u32, u64)], indices: &[u8]) -> Result<Vec<(u32, u64)>, FormatTableError> {
    if !indices.len().is_multiple_of(2) {
        return Err(FormatTableError::OddIndexArray(indices.len()));
    }
    indices
        .chunks_exact(2)
        .map(|i| {
            let index = u16::from_ne_bytes([i[0], i[1]]);
            table
                .get(index as usize)
                .copied()
                .ok_or(FormatTableError::IndexOutOfRange {
                    index,
                    len: table.len(),
                })
        })
        .collect()
}

/// The formats a compositor accepts, as GStreamer caps negotiation and the
/// Vulkan export (modifier choice) consume them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FormatSet {
    /// Version of `zwp_linux_dmabuf_v1` bound (0: the global is missing).
    pub dmabuf_version: u32,
    /// linux-dmabuf (fourcc code -> modifiers), all tranches merged.
    pub dmabuf: BTreeMap<u32, BTreeSet<u64>>,
    /// Feedback (v4+): the compositor's main device (`dev_t`).
    pub main_device: Option<u64>,
    /// Feedback (v4+): tranches in preference order.
    pub tranches: Vec<Tranche>,
    /// `wl_shm` formats as DRM fourcc codes (the protocol's 0 and 1 mapped
    /// to ARGB8888 / XRGB8888).
    pub shm: BTreeSet<u32>,
}

impl FormatSet {
    /// Whether a dma-buf of `fourcc` with `modifier` may be sent. The
    /// protocol's INVALID modifier ("implicit") also admits LINEAR buffers
    /// when the compositor listed only INVALID for the format, as v3
    /// compositors without modifier support do.
    pub fn supports_dmabuf(&self, fourcc: DrmFourcc, modifier: DrmModifier) -> bool {
        let Some(mods) = self.dmabuf.get(&(fourcc as u32)) else {
            return false;
        };
        // Exactly: LINEAR and INVALID (implicit, driver-defined layout) are
        // different modifiers, and a v3 `format` event advertises INVALID
        // only. A LINEAR buffer is sent only where LINEAR is advertised.
        mods.contains(&u64::from(modifier))
    }

    /// Whether `fourcc` can be shown through a `wl_shm` copy.
    pub fn supports_shm(&self, fourcc: DrmFourcc) -> bool {
        self.shm.contains(&(fourcc as u32))
    }

    /// Modifiers advertised for `fourcc`, in ascending order (empty when
    /// the format is not advertised). For the Vulkan export's modifier list.
    pub fn modifiers(&self, fourcc: DrmFourcc) -> Vec<DrmModifier> {
        self.dmabuf
            .get(&(fourcc as u32))
            .map(|m| m.iter().map(|&m| DrmModifier::from(m)).collect())
            .unwrap_or_default()
    }

    /// The modifiers advertised for `fourcc` as tiers, best first, for an
    /// exporter choosing one (`vulkan::Exporter::export_preferring`): with
    /// feedback, one tier per tranche that lists the format, the scanout
    /// tranches first (the compositor's order within each group, which is
    /// its preference); without feedback one tier, ascending.
    pub fn preferred_modifiers(&self, fourcc: DrmFourcc) -> Vec<Vec<DrmModifier>> {
        if self.tranches.is_empty() {
            let all = self.modifiers(fourcc);
            return if all.is_empty() { Vec::new() } else { vec![all] };
        }
        let code = fourcc as u32;
        let (scanout, rest): (Vec<&Tranche>, Vec<&Tranche>) = self.tranches.iter().partition(|t| t.scanout);
        scanout
            .into_iter()
            .chain(rest)
            .map(|t| {
                t.formats
                    .iter()
                    .filter(|&&(c, _)| c == code)
                    .map(|&(_, m)| DrmModifier::from(m))
                    .collect::<Vec<_>>()
            })
            .filter(|tier| !tier.is_empty())
            .collect()
    }

    /// Fourccs shown with zero copies as LINEAR buffers (linux-dmabuf
    /// advertises LINEAR for them), those we know of only.
    pub fn dmabuf_fourccs(&self) -> Vec<DrmFourcc> {
        self.dmabuf
            .keys()
            .filter_map(|&c| DrmFourcc::try_from(c).ok())
            .filter(|&f| self.supports_dmabuf(f, DrmModifier::Linear))
            .collect()
    }

    /// Fourccs shown through `wl_shm` copies, those we know of only.
    pub fn shm_fourccs(&self) -> Vec<DrmFourcc> {
        self.shm.iter().filter_map(|&c| DrmFourcc::try_from(c).ok()).collect()
    }

    /// Fourccs of the first (most preferred) tranche that allows scanout,
    /// when the compositor sent feedback.
    pub fn scanout_fourccs(&self) -> Vec<DrmFourcc> {
        self.tranches
            .iter()
            .find(|t| t.scanout)
            .map(|t| {
                t.formats
                    .iter()
                    .filter_map(|&(c, _)| DrmFourcc::try_from(c).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Rebuilds the merged linux-dmabuf map from the tranches (feedback).
    pub(crate) fn merge_tranches(&mut self) {
        self.dmabuf.clear();
        for t in &self.tranches {
            for &(c, m) in &t.formats {
                self.dmabuf.entry(c).or_default().insert(m);
            }
        }
    }
}

/// `wl_shm` format enum value -> DRM fourcc code (0 and 1 are the only
/// values that differ).
pub(crate) fn shm_to_fourcc(value: u32) -> u32 {
    match value {
        0 => DrmFourcc::Argb8888 as u32,
        1 => DrmFourcc::Xrgb8888 as u32,
        other => other,
    }
}

/// DRM fourcc -> `wl_shm` format enum value.
pub(crate) fn fourcc_to_shm(fourcc: DrmFourcc) -> u32 {
    match fourcc {
        DrmFourcc::Argb8888 => 0,
        DrmFourcc::Xrgb8888 => 1,
        other => other as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(format: u32, modifier: u64) -> Vec<u8> {
        let mut e = format.to_ne_bytes().to_vec();
        e.extend_from_slice(&[0; 4]);
        e.extend_from_slice(&modifier.to_ne_bytes());
        e
    }

    #[test]
    fn format_table_round_trip_and_refusals() {
        let nv12 = DrmFourcc::Nv12 as u32;
        let xr24 = DrmFourcc::Xrgb8888 as u32;
        let mut bytes = entry(xr24, 0);
        bytes.extend(entry(nv12, 0x0100_0000_0000_0002));
        let table = parse_format_table(&bytes).unwrap();
        assert_eq!(table, vec![(xr24, 0), (nv12, 0x0100_0000_0000_0002)]);
        for bad in [1, 15, 17, 31] {
            assert_eq!(parse_format_table(&bytes[..bad]), Err(FormatTableError::BadSize(bad)));
        }
        assert_eq!(parse_format_table(&[]).unwrap(), vec![]);
        let idx: Vec<u8> = [1u16, 0].iter().flat_map(|i| i.to_ne_bytes()).collect();
        assert_eq!(tranche_formats(&table, &idx).unwrap(), vec![table[1], table[0]]);
        assert_eq!(
            tranche_formats(&table, &2u16.to_ne_bytes()),
            Err(FormatTableError::IndexOutOfRange { index: 2, len: 2 })
        );
        assert_eq!(tranche_formats(&table, &[0]), Err(FormatTableError::OddIndexArray(1)));
    }

    /// Tiers for an exporter: the scanout tranche first, each tranche's own
    /// order kept, tranches without the format left out; v3 (no feedback)
    /// is one tier.
    #[test]
    fn preferred_modifiers_put_scanout_tranches_first() {
        let xr24 = DrmFourcc::Xrgb8888 as u32;
        let ccs = u64::from(DrmModifier::I915_y_tiled_ccs);
        let x_tiled = u64::from(DrmModifier::I915_x_tiled);
        let mut set = FormatSet::default();
        for (scanout, formats) in [
            (false, vec![(xr24, 0), (xr24, x_tiled), (xr24, ccs)]),
            (false, vec![(DrmFourcc::Nv12 as u32, 0)]),
            (true, vec![(xr24, ccs), (xr24, x_tiled)]),
        ] {
            set.tranches.push(Tranche {
                target_device: None,
                scanout,
                formats,
            });
        }
        set.merge_tranches();
        let ccs = DrmModifier::from(ccs);
        let x_tiled = DrmModifier::from(x_tiled);
        assert_eq!(
            set.preferred_modifiers(DrmFourcc::Xrgb8888),
            vec![vec![ccs, x_tiled], vec![DrmModifier::Linear, x_tiled, ccs]]
        );
        assert_eq!(
            set.preferred_modifiers(DrmFourcc::Nv12),
            vec![vec![DrmModifier::Linear]]
        );
        assert!(set.preferred_modifiers(DrmFourcc::Abgr8888).is_empty());
        let mut v3 = FormatSet::default();
        v3.dmabuf.entry(xr24).or_default().extend([0, u64::from(x_tiled)]);
        assert_eq!(
            v3.preferred_modifiers(DrmFourcc::Xrgb8888),
            vec![vec![DrmModifier::Linear, x_tiled]]
        );
    }

    #[test]
    fn support_rules() {
        let mut set = FormatSet::default();
        set.tranches.push(Tranche {
            target_device: Some(0xe280),
            scanout: false,
            formats: vec![
                (DrmFourcc::Xrgb8888 as u32, 0),
                (DrmFourcc::Nv12 as u32, u64::from(DrmModifier::Invalid)),
                (DrmFourcc::Abgr8888 as u32, 0x0100_0000_0000_0002),
            ],
        });
        set.merge_tranches();
        set.shm.insert(shm_to_fourcc(0));
        assert!(set.supports_dmabuf(DrmFourcc::Xrgb8888, DrmModifier::Linear));
        assert!(!set.supports_dmabuf(DrmFourcc::Xrgb8888, DrmModifier::from(0x0100_0000_0000_0002)));
        // Implicit (INVALID) is not LINEAR: a LINEAR buffer is not sent
        // where only the implicit modifier is advertised.
        assert!(!set.supports_dmabuf(DrmFourcc::Nv12, DrmModifier::Linear));
        assert!(set.supports_dmabuf(DrmFourcc::Nv12, DrmModifier::Invalid));
        assert!(!set.supports_dmabuf(DrmFourcc::Abgr8888, DrmModifier::Linear));
        assert!(!set.supports_dmabuf(DrmFourcc::Yuyv, DrmModifier::Linear));
        // In fourcc-code order.
        assert_eq!(set.dmabuf_fourccs(), vec![DrmFourcc::Xrgb8888]);
        assert_eq!(set.shm_fourccs(), vec![DrmFourcc::Argb8888]);
        assert_eq!(fourcc_to_shm(DrmFourcc::Argb8888), 0);
        assert_eq!(fourcc_to_shm(DrmFourcc::Nv12), DrmFourcc::Nv12 as u32);
        assert!(set.scanout_fourccs().is_empty());
    }
}
