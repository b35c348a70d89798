//! The `Shape` trait; each shape lives in a child module.

pub mod circle;

use crate::util::approx_eq;

pub trait Shape {
    fn area(&self) -> f64;

    fn same_area(&self, other: &dyn Shape) -> bool {
        approx_eq(self.area(), other.area(), 1e-9)
    }
}
