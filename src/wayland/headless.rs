//! A private headless Weston 14 (GL renderer on llvmpipe) for tests, the
//! viewer and users' CI, with output capture through `weston_capture_v1`.
//!
//! Each [`Weston`] runs in its own 0700 `XDG_RUNTIME_DIR` on a unique
//! socket, with `--debug` (without it the capture protocol answers
//! `failed("unauthorized")`) and kiosk-shell by default, which shows a
//! toplevel fullscreen at (0, 0) with nothing else on screen (desktop-shell
//! would add a panel, a background client and fade-out animations). It is
//! stopped by its PID on drop, and its runtime directory removed.
//!
//! Known: Weston 14.0.2's kiosk-shell can segfault when a second client's
//! toplevel maps after a first client's toplevel went away; start one
//! Weston per windowed client (cheap: ~0.1 s). [`Weston::log_tail`] says
//! whether Weston is still running, and shows its stderr.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_output::WlOutput, wl_shm, wl_shm::WlShm, wl_shm_pool::WlShmPool,
};
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};

use super::globals::{CONNECT_TIMEOUT, Globals, read_within, roundtrip_within};
use super::protocols::weston_capture::{weston_capture_source_v1 as source, weston_capture_v1 as capture};

/// Oldest Weston major version we drive (capture protocol, linux-dmabuf on
/// the headless GL renderer).
pub const MIN_WESTON_MAJOR: u32 = 14;

/// Why the headless compositor could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    /// `weston` is not installed.
    #[error("weston not found ({0}); install Weston 14 from bookworm-backports: run scripts/setup")]
    WestonMissing(String),
    /// `weston` is older than [`MIN_WESTON_MAJOR`].
    #[error(
        "weston {found} is too old (need {MIN_WESTON_MAJOR}+); install it from bookworm-backports: run scripts/setup"
    )]
    TooOld {
        /// What `weston --version` said.
        found: String,
    },
    /// Starting it or its runtime directory failed.
    #[error("starting weston: {0}")]
    Io(String),
    /// It exited before accepting connections.
    #[error("weston exited ({status}) before accepting connections; its log:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// It did not accept connections in time.
    #[error("weston did not accept connections within {0:?}; its log:\n{1}")]
    Timeout(Duration, String),
    /// Capturing the output failed.
    #[error("capture: {0}")]
    Capture(String),
}

/// Renderer Weston composites with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// GL (llvmpipe here): offers linux-dmabuf.
    Gl,
    /// Pixman: no linux-dmabuf at all (for testing the `wl_shm` fallback).
    Pixman,
}

/// Where Weston's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// No display: an output of [`WestonOptions::width`] x `height` in
    /// memory (the default; runs anywhere).
    Headless,
    /// Weston's DRM backend on the first KMS card (e.g. virtio-gpu in the
    /// VM stage): a real display pipeline, explicit sync offered. Needs
    /// root (libseat's builtin backend) and a card with a connected
    /// output; the output's size is the card's mode, not `width` x `height`.
    Drm,
}

/// Options for [`Weston::start`].
#[derive(Debug, Clone)]
pub struct WestonOptions {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Renderer.
    pub renderer: Renderer,
    /// Backend (headless by default).
    pub backend: Backend,
    /// Shell module (`kiosk-shell.so` by default).
    pub shell: String,
    /// Output refresh rate in mHz (60000 = 60 Hz). Frame callbacks come at
    /// this rate; tests that push thousands of frames raise it.
    pub refresh_mhz: u32,
    /// How long to wait for the socket.
    pub startup_timeout: Duration,
    /// Extra environment for Weston, e.g. `LIBGL_ALWAYS_SOFTWARE=1`, with
    /// which Mesa's EGL gives its GL renderer native fence sync on
    /// llvmpipe (Weston then offers `zwp_linux_explicit_synchronization_v1`).
    pub env: Vec<(String, String)>,
    /// weston.ini contents (e.g. `"[core]\ncolor-management=true\n"`,
    /// which makes Weston >= 15 offer `wp_color_manager_v1`); `None`: no
    /// configuration file at all.
    pub config: Option<String>,
}

impl Default for WestonOptions {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            renderer: Renderer::Gl,
            backend: Backend::Headless,
            shell: "kiosk-shell.so".into(),
            refresh_mhz: 60_000,
            startup_timeout: Duration::from_secs(20),
            env: Vec::new(),
            config: None,
        }
    }
}

/// An RGBA image (the output, captured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, R, G, B, A.
    pub rgba: Vec<u8>,
}

impl Image {
    /// The pixel at (x, y) as [R, G, B, A]; None outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        self.rgba.get(i..i + 4).map(|p| [p[0], p[1], p[2], p[3]])
    }

    /// Writes the image as an 8-bit RGBA PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), HeadlessError> {
        let file = std::fs::File::create(path).map_err(|e| HeadlessError::Io(format!("{}: {e}", path.display())))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| HeadlessError::Io(format!("{}: {e}", path.display())))?;
        writer
            .write_image_data(&self.rgba)
            .map_err(|e| HeadlessError::Io(format!("{}: {e}", path.display())))
    }

    /// Reads an 8-bit RGBA or RGB PNG (for checking saved screenshots).
    pub fn load_png(path: &Path) -> Result<Self, HeadlessError> {
        let io = |e: &dyn std::fmt::Display| HeadlessError::Io(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| io(&e))?;
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .map_err(|e| io(&e))?;
        let mut data = vec![0; reader.output_buffer_size().ok_or_else(|| io(&"image too large"))?];
        let frame = reader.next_frame(&mut data).map_err(|e| io(&e))?;
        data.truncate(frame.buffer_size());
        let rgba = match (frame.color_type, frame.bit_depth) {
            (png::ColorType::Rgba, png::BitDepth::Eight) => data,
            (png::ColorType::Rgb, png::BitDepth::Eight) => {
                data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
            }
            other => return Err(io(&format!("unsupported PNG layout {other:?}"))),
        };
        Ok(Self {
            width: frame.width,
            height: frame.height,
            rgba,
        })
    }
}

/// A running headless Weston. See the module docs.
#[derive(Debug)]
pub struct Weston {
    child: Option<Child>,
    runtime_dir: PathBuf,
    socket: String,
    log: PathBuf,
    options: WestonOptions,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `weston --version`'s text, or why it cannot run.
pub fn weston_version() -> Result<String, HeadlessError> {
    let out = Command::new("weston")
        .arg("--version")
        .output()
        .map_err(|e| HeadlessError::WestonMissing(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_WESTON_MAJOR => Ok(text),
        _ => Err(HeadlessError::TooOld { found: text }),
    }
}

impl Weston {
    /// Starts Weston and waits until it accepts connections.
    pub fn start(options: WestonOptions) -> Result<Self, HeadlessError> {
        weston_version()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let runtime_dir =
            std::env::temp_dir().join(format!("dmabuf-interop-weston-{}-{n}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&runtime_dir)
            .map_err(|e| HeadlessError::Io(format!("{}: {e}", runtime_dir.display())))?;
        let socket = format!("wayland-dmabuf-interop-{n}");
        let log = runtime_dir.join("weston.log");
        let renderer = match options.renderer {
            Renderer::Gl => "gl",
            Renderer::Pixman => "pixman",
        };
        let mut args = vec![
            format!("--renderer={renderer}"),
            format!("--shell={}", options.shell),
            format!("--socket={socket}"),
            "--debug".into(),
            "--idle-time=0".into(),
            format!("--log={}", log.display()),
        ];
        match &options.config {
            Some(ini) => {
                let path = runtime_dir.join("weston.ini");
                std::fs::write(&path, ini).map_err(|e| HeadlessError::Io(format!("{}: {e}", path.display())))?;
                args.push(format!("--config={}", path.display()));
            }
            None => args.push("--no-config".into()),
        }
        match options.backend {
            Backend::Headless => args.extend([
                "--backend=headless".into(),
                format!("--width={}", options.width),
                format!("--height={}", options.height),
                format!("--refresh-rate={}", options.refresh_mhz),
            ]),
            Backend::Drm => args.extend(["--backend=drm".into(), "--continue-without-input".into()]),
        }
        let child = Command::new("weston")
            .args(&args)
            // The DRM backend takes the seat itself (root, no seatd/logind).
            .env("LIBSEAT_BACKEND", "builtin")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("WAYLAND_SOCKET")
            .env_remove("DISPLAY")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(runtime_dir.join("weston.stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .map_err(|e| HeadlessError::Io(format!("spawning weston: {e}")))?;
        let mut weston = Self {
            child: Some(child),
            runtime_dir,
            socket,
            log,
            options,
        };
        weston.wait_ready()?;
        Ok(weston)
    }

    fn wait_ready(&mut self) -> Result<(), HeadlessError> {
        let timeout = self.options.startup_timeout;
        let deadline = Instant::now() + timeout;
        let path = self.socket_path();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(HeadlessError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if UnixStream::connect(&path).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HeadlessError::Timeout(timeout, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The compositor's socket.
    pub fn socket_path(&self) -> PathBuf {
        self.runtime_dir.join(&self.socket)
    }

    /// The socket's name (`WAYLAND_DISPLAY`).
    pub fn socket_name(&self) -> &str {
        &self.socket
    }

    /// The private runtime directory (`XDG_RUNTIME_DIR`).
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// Environment for a client process (e.g. `gst-launch-1.0 ... !
    /// waylandsink`) to connect to this Weston.
    pub fn client_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("XDG_RUNTIME_DIR", self.runtime_dir.clone().into_os_string()),
            ("WAYLAND_DISPLAY", OsString::from(&self.socket)),
        ]
    }

    /// The output size.
    pub fn size(&self) -> (u32, u32) {
        (self.options.width, self.options.height)
    }

    /// Weston's PID (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last 40 lines of Weston's log, then of its stderr (where a
    /// crash reports), and whether it is still running.
    pub fn log_tail(&self) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        // A dead child not reaped yet is a zombie ('Z') in /proc.
        let status = match self.pid() {
            Some(pid) => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) if stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => {
                    "weston has exited (crashed or was killed)".to_string()
                }
                Ok(_) => "weston is running".to_string(),
                Err(_) => "weston is gone".to_string(),
            },
            None => "weston was stopped".to_string(),
        };
        format!(
            "{}\n--- stderr ---\n{}\n--- {status}",
            tail(&self.log),
            tail(&self.runtime_dir.join("weston.stderr"))
        )
    }

    /// Kills Weston now (SIGKILL) and reaps it, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Captures the output's framebuffer into an RGBA image.
    pub fn capture(&self) -> Result<Image, HeadlessError> {
        let err = |e: &dyn std::fmt::Display| HeadlessError::Capture(e.to_string());
        let stream = UnixStream::connect(self.socket_path()).map_err(|e| err(&e))?;
        let conn = Connection::from_socket(stream).map_err(|e| err(&e))?;
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        let mut state = CaptureState::default();
        let globals = Globals::new(&conn, &mut queue, &mut state, CONNECT_TIMEOUT).map_err(|e| err(&e))?;
        let output: WlOutput = globals.bind(&qh, 1..=1, ()).ok_or_else(|| err(&"no wl_output"))?;
        let shm: WlShm = globals.bind(&qh, 1..=1, ()).ok_or_else(|| err(&"no wl_shm"))?;
        let factory: capture::WestonCaptureV1 = globals
            .bind(&qh, 1..=1, ())
            .ok_or_else(|| err(&"weston_capture_v1 not offered (is weston running with --debug?)"))?;
        let src = factory.create(&output, capture::Source::Framebuffer, &qh, ());
        roundtrip_within(
            &conn,
            &mut queue,
            &mut state,
            CONNECT_TIMEOUT,
            "the capture source's format",
        )
        .map_err(|e| err(&e))?;
        let (Some(format), Some((width, height))) = (state.format, state.size) else {
            return Err(err(&"no format/size from weston_capture_source_v1"));
        };
        let argb = drm_fourcc::DrmFourcc::Argb8888 as u32;
        let xrgb = drm_fourcc::DrmFourcc::Xrgb8888 as u32;
        if format != argb && format != xrgb {
            return Err(err(&format!("capture format {format:#x} is not (A|X)RGB8888")));
        }
        let stride = width * 4;
        let len = (stride * height) as usize;
        let fd =
            rustix::fs::memfd_create("dmabuf-interop-capture", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| err(&e))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(|e| err(&e))?;
        let pool = shm.create_pool(std::os::fd::AsFd::as_fd(&fd), len as i32, &qh, ());
        let shm_format = if format == argb {
            wl_shm::Format::Argb8888
        } else {
            wl_shm::Format::Xrgb8888
        };
        let buffer = pool.create_buffer(0, width as i32, height as i32, stride as i32, shm_format, &qh, ());
        src.capture(&buffer);
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.outcome.is_none() {
            if Instant::now() > deadline {
                return Err(err(&"no answer to weston_capture_source_v1.capture within 10 s"));
            }
            read_within(&mut queue, &mut state, Duration::from_millis(100)).map_err(|e| err(&e))?;
        }
        let outcome = state.outcome.take().unwrap_or_default();
        buffer.destroy();
        pool.destroy();
        src.destroy();
        factory.destroy();
        let _ = conn.flush();
        if outcome != "complete" {
            return Err(err(&format!("weston answered {outcome}")));
        }
        let mut raw = vec![0u8; len];
        let read = rustix::io::pread(&fd, &mut raw, 0).map_err(|e| err(&e))?;
        if read != len {
            return Err(err(&format!("read {read} of {len} capture bytes")));
        }
        // Little-endian (A|X)RGB8888 is B, G, R, A in memory.
        let opaque = format == xrgb;
        let rgba = raw
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0], if opaque { 255 } else { p[3] }])
            .collect();
        Ok(Image { width, height, rgba })
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

#[derive(Default)]
struct CaptureState {
    format: Option<u32>,
    size: Option<(u32, u32)>,
    outcome: Option<String>,
}

delegate_noop!(CaptureState: ignore WlOutput);
delegate_noop!(CaptureState: ignore WlShm);
delegate_noop!(CaptureState: ignore WlShmPool);
delegate_noop!(CaptureState: ignore WlBuffer);
delegate_noop!(CaptureState: ignore capture::WestonCaptureV1);

impl Dispatch<source::WestonCaptureSourceV1, ()> for CaptureState {
    fn event(
        state: &mut Self,
        _: &source::WestonCaptureSourceV1,
        event: source::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            source::Event::Format { drm_format } => state.format = Some(drm_format),
            source::Event::Size { width, height } => state.size = Some((width as u32, height as u32)),
            source::Event::Complete => state.outcome = Some("complete".into()),
            source::Event::Retry => state.outcome = Some("retry".into()),
            source::Event::Failed { msg } => state.outcome = Some(format!("failed({msg:?})")),
        }
    }
}
