//! The `DmaBuf` builder against random input and against each rejection
//! class.
//!
//! The property test compares the builder with an independent model written
//! here in `u128` arithmetic (so the model itself cannot overflow) over
//! 100 000 random inputs (override with `DMABUF_PROPTEST_CASES`): the builder
//! never panics, accepts exactly what the model accepts (checking the
//! invariants of what it accepts) and rejects with the error class the model
//! predicts. Every rejection class must be hit during the run.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use dmabuf_interop::{DmaBuf, DmaBufError, DrmFourcc, DrmModifier};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rustix::fs::MemfdFlags;

fn memfd(size: u64) -> Arc<OwnedFd> {
    let fd = rustix::fs::memfd_create("builder-test", MemfdFlags::CLOEXEC).expect("memfd_create");
    rustix::fs::ftruncate(&fd, size).expect("ftruncate");
    Arc::new(fd)
}

/// The error the builder gives for a LINEAR `fourcc` `width`x`height`
/// with `planes` (fd, offset, stride).
fn rejected(fourcc: DrmFourcc, width: u32, height: u32, planes: Vec<(Arc<OwnedFd>, u32, u32)>) -> DmaBufError {
    planes
        .into_iter()
        .fold(
            DmaBuf::builder(fourcc, DrmModifier::Linear, width, height),
            |b, (fd, offset, stride)| b.plane(fd, offset, stride),
        )
        .build()
        .unwrap_err()
}

/// fd sizes the random planes draw from; sparse, so the big ones cost nothing.
const FD_SIZES: &[u64] = &[
    0,
    1,
    4095,
    4096,
    65_536,
    1 << 20,
    3_110_400,
    1 << 33,
    u32::MAX as u64 + 10,
];

/// The model's own copy of the format table: (bytes per block, block width,
/// h_sub, v_sub) per plane.
fn model_planes(fourcc: DrmFourcc) -> Option<&'static [(u128, u128, u128, u128)]> {
    use DrmFourcc::*;
    Some(match fourcc {
        Xrgb8888 | Argb8888 | Xbgr8888 | Abgr8888 => &[(4, 1, 1, 1)],
        Rgb565 => &[(2, 1, 1, 1)],
        Nv12 | Nv21 => &[(1, 1, 1, 1), (2, 1, 2, 2)],
        Yuv420 | Yvu420 => &[(1, 1, 1, 1), (1, 1, 2, 2), (1, 1, 2, 2)],
        Yuyv | Uyvy => &[(4, 2, 1, 1)],
        P010 => &[(2, 1, 1, 1), (4, 1, 2, 2)],
        _ => return None,
    })
}

fn div_ceil(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
}

fn model_min_row(plane: (u128, u128, u128, u128), width: u32) -> u128 {
    let (bpb, bw, hs, _) = plane;
    div_ceil(div_ceil(width as u128, hs), bw) * bpb
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Accepted,
    ZeroSize,
    UnsupportedFormat,
    WrongPlaneCount,
    Overflow,
    StrideTooSmall,
    OffsetPastEnd,
    FdTooSmall,
}

fn class_of(result: &Result<DmaBuf, DmaBufError>) -> Class {
    match result {
        Ok(_) => Class::Accepted,
        Err(DmaBufError::ZeroSize { .. }) => Class::ZeroSize,
        Err(DmaBufError::UnsupportedFormat { .. }) => Class::UnsupportedFormat,
        Err(DmaBufError::WrongPlaneCount { .. }) => Class::WrongPlaneCount,
        Err(DmaBufError::Overflow { .. }) => Class::Overflow,
        Err(DmaBufError::StrideTooSmall { .. }) => Class::StrideTooSmall,
        Err(DmaBufError::OffsetPastEnd { .. }) => Class::OffsetPastEnd,
        Err(DmaBufError::FdTooSmall { .. }) => Class::FdTooSmall,
        Err(e) => panic!("unexpected error class: {e}"),
    }
}

#[derive(Debug, Clone)]
struct Input {
    fourcc: DrmFourcc,
    modifier: DrmModifier,
    width: u32,
    height: u32,
    /// (index into FD_SIZES, offset, stride)
    planes: Vec<(usize, u32, u32)>,
}

fn model(input: &Input) -> Class {
    if input.width == 0 || input.height == 0 {
        return Class::ZeroSize;
    }
    let Some(format) = model_planes(input.fourcc) else {
        return Class::UnsupportedFormat;
    };
    let linear_like = matches!(input.modifier, DrmModifier::Linear | DrmModifier::Invalid);
    let n = input.planes.len();
    let count_ok = if linear_like {
        n == format.len()
    } else {
        n >= format.len() && n <= 4
    };
    if !count_ok {
        return Class::WrongPlaneCount;
    }
    for (index, &(fd, offset, stride)) in input.planes.iter().enumerate() {
        let size = FD_SIZES[fd] as u128;
        let end = match format.get(index) {
            Some(&plane) => {
                let min = model_min_row(plane, input.width);
                if min > u32::MAX as u128 {
                    return Class::Overflow;
                }
                if (stride as u128) < min {
                    return Class::StrideTooSmall;
                }
                offset as u128 + stride as u128 * div_ceil(input.height as u128, plane.3)
            }
            None => offset as u128 + 1,
        };
        if offset as u128 >= size {
            return Class::OffsetPastEnd;
        }
        if end > size {
            return Class::FdTooSmall;
        }
    }
    Class::Accepted
}

fn fourccs() -> impl Strategy<Value = DrmFourcc> {
    use DrmFourcc::*;
    prop_oneof![
        10 => proptest::sample::select(vec![
            Xrgb8888, Argb8888, Xbgr8888, Abgr8888, Rgb565, Nv12, Nv21, Yuv420, Yvu420, Yuyv, Uyvy, P010,
        ]),
        1 => proptest::sample::select(vec![Rgb888, Bgr888, Nv16, Xrgb2101010]),
    ]
}

fn modifiers() -> impl Strategy<Value = DrmModifier> {
    prop_oneof![
        8 => Just(DrmModifier::Linear),
        2 => Just(DrmModifier::Invalid),
        1 => Just(DrmModifier::I915_x_tiled),
        1 => Just(DrmModifier::from(0x0100_0000_0000_0002u64)),
    ]
}

fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(0u32),
        8 => 1u32..64,
        6 => 1u32..5000,
        2 => (u32::MAX - 64)..=u32::MAX,
        1 => (u32::MAX / 4 - 8)..=(u32::MAX / 4 + 8),
        2 => any::<u32>(),
    ]
}

fn offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => Just(0u32),
        4 => 0u32..8192,
        1 => (u32::MAX - 16)..=u32::MAX,
        2 => any::<u32>(),
    ]
}

/// How a plane's stride relates to its minimum row size.
fn stride_choice() -> impl Strategy<Value = (u8, u32)> {
    (0u8..6, any::<u32>())
}

fn stride_from(choice: (u8, u32), min: u128) -> u32 {
    let min = min.min(u32::MAX as u128) as u32;
    match choice.0 {
        0 | 1 => min,
        2 => min.saturating_sub(1 + choice.1 % 4),
        3 => min.saturating_add(choice.1 % 256),
        4 => choice.1,
        _ => 0,
    }
}

fn inputs() -> impl Strategy<Value = Input> {
    (
        fourccs(),
        modifiers(),
        dimension(),
        dimension(),
        prop_oneof![1 => 0usize..=5, 6 => Just(usize::MAX)],
    )
        .prop_flat_map(|(fourcc, modifier, width, height, count)| {
            let format_planes = model_planes(fourcc).map_or(1, |p| p.len());
            let count = if count == usize::MAX { format_planes } else { count };
            let planes = proptest::collection::vec((0..FD_SIZES.len(), offset(), stride_choice()), count);
            (Just(fourcc), Just(modifier), Just(width), Just(height), planes)
        })
        .prop_map(|(fourcc, modifier, width, height, planes)| {
            let format = model_planes(fourcc);
            let planes = planes
                .into_iter()
                .enumerate()
                .map(|(index, (fd, offset, choice))| {
                    let min = format
                        .and_then(|f| f.get(index))
                        .map_or(1, |&plane| model_min_row(plane, width.max(1)));
                    (fd, offset, stride_from(choice, min))
                })
                .collect();
            Input {
                fourcc,
                modifier,
                width,
                height,
                planes,
            }
        })
}

#[test]
fn random_inputs_match_the_model_and_never_panic() {
    let cases: u32 = std::env::var("DMABUF_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fds: Vec<Arc<OwnedFd>> = FD_SIZES.iter().map(|&s| memfd(s)).collect();
    let counts = Mutex::new(BTreeMap::<Class, u64>::new());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&inputs(), |input| {
        let mut builder = DmaBuf::builder(input.fourcc, input.modifier, input.width, input.height);
        for &(fd, offset, stride) in &input.planes {
            builder = builder.plane(Arc::clone(&fds[fd]), offset, stride);
        }
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build()));
        let built = match built {
            Ok(built) => built,
            Err(_) => return Err(TestCaseError::fail(format!("builder panicked on {input:?}"))),
        };
        let expected = model(&input);
        let got = class_of(&built);
        prop_assert_eq!(got, expected, "input {:?} gave {:?}", input, built);
        if let Ok(buf) = &built {
            // Invariants of everything accepted.
            prop_assert_eq!(buf.planes().len(), input.planes.len());
            prop_assert_eq!((buf.width(), buf.height()), (input.width, input.height));
            let format = model_planes(input.fourcc).unwrap_or(&[]);
            for (index, (plane, &(fd, offset, stride))) in buf.planes().iter().zip(&input.planes).enumerate() {
                prop_assert_eq!((plane.offset(), plane.stride()), (offset, stride));
                prop_assert_eq!(plane.fd_size(), FD_SIZES[fd]);
                if let Some(&p) = format.get(index) {
                    prop_assert!(stride as u128 >= model_min_row(p, input.width));
                    let end = offset as u128 + stride as u128 * div_ceil(input.height as u128, p.3);
                    prop_assert!(end <= FD_SIZES[fd] as u128);
                }
            }
            prop_assert!(!buf.is_kernel_dmabuf());
            prop_assert_eq!(buf.id().planes.len(), input.planes.len());
        }
        *counts.lock().unwrap().entry(got).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let counts = counts.into_inner().unwrap();
    println!("{cases} cases by outcome: {counts:?}");
    let total: u64 = counts.values().sum();
    assert_eq!(total, u64::from(cases));
    for class in [
        Class::Accepted,
        Class::ZeroSize,
        Class::UnsupportedFormat,
        Class::WrongPlaneCount,
        Class::Overflow,
        Class::StrideTooSmall,
        Class::OffsetPastEnd,
        Class::FdTooSmall,
    ] {
        assert!(
            counts.get(&class).copied().unwrap_or(0) > 0,
            "{class:?} never happened in {cases} cases: {counts:?}"
        );
    }
}

// ------------------------------------------------------------- each class

fn nv12_1080p() -> DmaBuf {
    let fd = memfd(3_110_400);
    DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::Linear, 1920, 1080)
        .plane(Arc::clone(&fd), 0, 1920)
        .plane(fd, 2_073_600, 1920)
        .build()
        .expect("a valid NV12 buffer")
}

#[test]
fn a_valid_buffer_is_accepted_with_its_fields() {
    let buf = nv12_1080p();
    assert_eq!(buf.planes().len(), 2);
    assert!(buf.planes()[0].same_file(&buf.planes()[1]));
    assert_eq!(buf.planes()[1].offset(), 2_073_600);
    assert_eq!(buf.planes()[1].fd_size(), 3_110_400);
    assert!(!buf.is_kernel_dmabuf());
}

#[test]
fn wrong_plane_count() {
    let err = rejected(DrmFourcc::Nv12, 16, 16, vec![(memfd(4096), 0, 16)]);
    assert!(
        matches!(
            err,
            DmaBufError::WrongPlaneCount {
                min: 2,
                max: 2,
                given: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "NV12 with modifier LINEAR (0x0) needs 2..=2 planes, got 1"
    );
    // Five planes is too many for anything.
    let fd = memfd(4096);
    let mut b = DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::I915_x_tiled, 16, 16);
    for _ in 0..5 {
        b = b.plane(Arc::clone(&fd), 0, 16);
    }
    assert!(matches!(
        b.build(),
        Err(DmaBufError::WrongPlaneCount {
            min: 2,
            max: 4,
            given: 5,
            ..
        })
    ));
}

#[test]
fn stride_too_small() {
    let err = rejected(DrmFourcc::Xrgb8888, 250, 75, vec![(memfd(1 << 20), 0, 999)]);
    assert_eq!(
        err,
        DmaBufError::StrideTooSmall {
            plane: 0,
            stride: 999,
            min: 1000
        }
    );
    // Subsampled plane of an odd width rounds up: 3 px of NV12 = 2 chroma
    // samples = 4 bytes per UV row.
    let fd = memfd(4096);
    let err = rejected(DrmFourcc::Nv12, 3, 5, vec![(Arc::clone(&fd), 0, 3), (fd, 15, 3)]);
    assert_eq!(
        err,
        DmaBufError::StrideTooSmall {
            plane: 1,
            stride: 3,
            min: 4
        }
    );
}

#[test]
fn offset_past_the_end() {
    let fd = memfd(1000);
    let err = rejected(DrmFourcc::Nv12, 10, 10, vec![(Arc::clone(&fd), 0, 10), (fd, 1000, 10)]);
    assert_eq!(
        err,
        DmaBufError::OffsetPastEnd {
            plane: 1,
            offset: 1000,
            fd_size: 1000
        }
    );
}

#[test]
fn fd_too_small() {
    // 250x75 RGBA needs 75000 bytes; one byte short.
    let err = rejected(DrmFourcc::Abgr8888, 250, 75, vec![(memfd(74_999), 0, 1000)]);
    assert_eq!(
        err,
        DmaBufError::FdTooSmall {
            plane: 0,
            needed: 75_000,
            fd_size: 74_999
        }
    );
    // Chroma rows round up: 5 rows of luma need 3 rows of chroma.
    let fd = memfd(15 + 8);
    let err = rejected(DrmFourcc::Nv12, 3, 5, vec![(Arc::clone(&fd), 0, 3), (fd, 15, 4)]);
    assert_eq!(
        err,
        DmaBufError::FdTooSmall {
            plane: 1,
            needed: 27,
            fd_size: 23
        }
    );
}

#[test]
fn overflow_near_u32_max() {
    // A row of 2^30 XRGB pixels is 2^32 bytes: not a u32 stride.
    let err = rejected(DrmFourcc::Xrgb8888, 1 << 30, 1, vec![(memfd(4096), 0, u32::MAX)]);
    assert!(matches!(err, DmaBufError::Overflow { plane: 0, .. }), "{err}");
    // The largest stride and height: the end is computed in u64 and compared,
    // not wrapped.
    let err = rejected(
        DrmFourcc::Rgb565,
        1,
        u32::MAX,
        vec![(memfd(u32::MAX as u64 + 10), u32::MAX - 1, u32::MAX)],
    );
    assert_eq!(
        err,
        DmaBufError::FdTooSmall {
            plane: 0,
            needed: (u32::MAX as u64 - 1) + (u32::MAX as u64) * (u32::MAX as u64),
            fd_size: u32::MAX as u64 + 10
        }
    );
}

#[test]
fn zero_width_or_height() {
    for (w, h) in [(0, 1), (1, 0), (0, 0)] {
        let err = rejected(DrmFourcc::Xrgb8888, w, h, vec![(memfd(4096), 0, 4)]);
        assert_eq!(err, DmaBufError::ZeroSize { width: w, height: h });
    }
}

#[test]
fn unsupported_format() {
    let err = rejected(DrmFourcc::Rgb888, 4, 4, vec![(memfd(4096), 0, 12)]);
    assert_eq!(
        err,
        DmaBufError::UnsupportedFormat {
            fourcc: DrmFourcc::Rgb888
        }
    );
}

#[test]
fn identity_ignores_fd_numbers_and_follows_files() {
    let a = nv12_1080p();
    // The same file through dup'ed fds is the same identity.
    let dup_planes: Vec<OwnedFd> = a
        .planes()
        .iter()
        .map(|p| p.fd().try_clone_to_owned().unwrap())
        .collect();
    let mut b = DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::Linear, 1920, 1080);
    for (fd, plane) in dup_planes.into_iter().zip(a.planes()) {
        b = b.plane(fd, plane.offset(), plane.stride());
    }
    let b = b.build().unwrap();
    assert_ne!(
        std::os::fd::AsRawFd::as_raw_fd(&a.planes()[0].fd()),
        std::os::fd::AsRawFd::as_raw_fd(&b.planes()[0].fd())
    );
    assert_eq!(a.id(), b.id());
    assert!(!a.ptr_eq(&b));
    // Another file of the same size is another identity.
    assert_ne!(a.id(), nv12_1080p().id());
    // The weak handle follows the buffer's clones.
    let weak = a.downgrade();
    let clone = a.clone();
    drop(a);
    assert!(weak.is_alive());
    drop(clone);
    assert!(!weak.is_alive());
    assert!(weak.upgrade().is_none());
}

#[test]
fn vendor_modifiers_accept_auxiliary_planes() {
    let fd = memfd(1 << 20);
    let buf = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::I915_y_tiled_ccs, 64, 64)
        .plane(Arc::clone(&fd), 0, 256)
        .plane(fd, 65_536, 128)
        .build()
        .expect("main plane + CCS plane");
    assert_eq!(buf.planes().len(), 2);
}
