/// True when two floats agree to within a relative tolerance.
pub fn approx_eq(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}
