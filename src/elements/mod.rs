//! GStreamer elements (feature `gstreamer`): compositions of the adapters.
//! `vkdmabufsrc` needs `vulkan`, `wldmabufsink` needs `wayland` only.
//! Register them with [`register`] for static use, or load the plugin
//! (`GST_PLUGIN_PATH=target/<profile>`).

#[cfg(feature = "vulkan")]
pub mod vkdmabufsrc;
#[cfg(feature = "wayland")]
pub mod wldmabufsink;

use gstreamer as gst;

/// Registers every element of the crate with `plugin` (or, with `None`,
/// statically for this process).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), gst::glib::BoolError> {
    #[cfg(feature = "vulkan")]
    vkdmabufsrc::register(plugin)?;
    #[cfg(feature = "wayland")]
    wldmabufsink::register(plugin)?;
    Ok(())
}

/// Locks `mutex`, taking a poisoned lock's data as it is: a panic in one
/// of the element's threads has been reported already, and the element
/// must still answer its properties and stop. The one lock idiom of the
/// elements.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The one always-present pad of an element (`src` or `sink`), for
/// `ElementImpl::pad_templates`; empty if the caps are rejected.
fn always_pad(direction: gst::PadDirection, caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    let name = if direction == gst::PadDirection::Src {
        "src"
    } else {
        "sink"
    };
    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
        .map(|t| vec![t])
        .unwrap_or_default()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    register(Some(plugin))
}

/// The plugin entry points GStreamer looks up when it loads the cdylib.
#[allow(missing_docs)]
mod plugin {
    use super::*;

    gst::plugin_define!(
        dmabuf_interop,
        env!("CARGO_PKG_DESCRIPTION"),
        plugin_init,
        env!("CARGO_PKG_VERSION"),
        "MIT/X11",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_NAME"),
        "https://crates.io/crates/dmabuf-interop"
    );
}
