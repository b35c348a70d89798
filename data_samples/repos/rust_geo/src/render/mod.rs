//! Render shapes as lines of text.

use crate::shapes::{circle::Circle, Shape};

pub fn describe(c: &Circle) -> String {
    format!("circle r={} area={:.3}", c.radius, c.area())
}
