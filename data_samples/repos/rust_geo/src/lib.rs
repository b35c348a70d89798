//! geo: shapes with areas and a plain-text renderer.

pub mod render;
pub mod shapes;
mod util;

pub use shapes::Shape;
