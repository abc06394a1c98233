//! CPU references the GPU paths are checked against: [`pattern`], the
//! moving test pattern (what vkdmabufsrc and the viewer draw), and
//! [`overlay`], the viewer's frame counter and progress bar (what the
//! composite shaders draw). Tests compare GPU output with these byte for
//! byte or within a stated tolerance.

pub mod overlay;
pub mod pattern;
