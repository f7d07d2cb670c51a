//! Small 3D math: vectors, rotations and rigid poses (f32; the scenes span about a metre, so
//! single precision leaves sub-micrometre error).

use std::ops::{Add, AddAssign, Mul, Neg, Sub};

/// A 3-vector (point or direction), metres where it is a position.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

/// Shorthand constructor.
pub const fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

impl V3 {
    pub const ZERO: V3 = v3(0.0, 0.0, 0.0);

    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn cross(self, o: V3) -> V3 {
        v3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }

    pub fn norm(self) -> f32 {
        self.dot(self).sqrt()
    }

    /// Unit vector; a zero vector stays zero (callers never rely on its direction).
    pub fn normalized(self) -> V3 {
        let n = self.norm();
        if n > 0.0 { self * (1.0 / n) } else { self }
    }

    pub fn lerp(self, o: V3, t: f32) -> V3 {
        self + (o - self) * t
    }

    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }

    pub fn from_array(a: [f32; 3]) -> V3 {
        v3(a[0], a[1], a[2])
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl AddAssign for V3 {
    fn add_assign(&mut self, o: V3) {
        *self = *self + o;
    }
}

impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        v3(self.x * s, self.y * s, self.z * s)
    }
}

impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        v3(-self.x, -self.y, -self.z)
    }
}

/// A 3×3 rotation stored as its three columns (the images of the x, y, z axes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rot {
    pub cx: V3,
    pub cy: V3,
    pub cz: V3,
}

impl Rot {
    pub const IDENTITY: Rot = Rot {
        cx: v3(1.0, 0.0, 0.0),
        cy: v3(0.0, 1.0, 0.0),
        cz: v3(0.0, 0.0, 1.0),
    };

    /// Rotation by `angle` radians about the unit `axis` (Rodrigues).
    pub fn axis_angle(axis: V3, angle: f32) -> Rot {
        let (s, c) = angle.sin_cos();
        let k = axis.normalized();
        let col = |e: V3| e * c + k.cross(e) * s + k * (k.dot(e) * (1.0 - c));
        Rot {
            cx: col(v3(1.0, 0.0, 0.0)),
            cy: col(v3(0.0, 1.0, 0.0)),
            cz: col(v3(0.0, 0.0, 1.0)),
        }
    }

    /// Rotation about the world z axis.
    pub fn about_z(angle: f32) -> Rot {
        Rot::axis_angle(v3(0.0, 0.0, 1.0), angle)
    }

    pub fn apply(&self, v: V3) -> V3 {
        self.cx * v.x + self.cy * v.y + self.cz * v.z
    }

    /// `self · o`.
    pub fn compose(&self, o: &Rot) -> Rot {
        Rot {
            cx: self.apply(o.cx),
            cy: self.apply(o.cy),
            cz: self.apply(o.cz),
        }
    }

    pub fn transpose(&self) -> Rot {
        Rot {
            cx: v3(self.cx.x, self.cy.x, self.cz.x),
            cy: v3(self.cx.y, self.cy.y, self.cz.y),
            cz: v3(self.cx.z, self.cy.z, self.cz.z),
        }
    }
}

/// A rigid transform `p ↦ r·p + t`; named `a_from_b` where it maps b-frame points into frame a.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub r: Rot,
    pub t: V3,
}

impl Pose {
    pub const IDENTITY: Pose = Pose {
        r: Rot::IDENTITY,
        t: V3::ZERO,
    };

    pub fn new(r: Rot, t: V3) -> Pose {
        Pose { r, t }
    }

    pub fn apply(&self, p: V3) -> V3 {
        self.r.apply(p) + self.t
    }

    pub fn apply_dir(&self, d: V3) -> V3 {
        self.r.apply(d)
    }

    /// `self ∘ o` (apply `o` first).
    pub fn compose(&self, o: &Pose) -> Pose {
        Pose {
            r: self.r.compose(&o.r),
            t: self.apply(o.t),
        }
    }

    pub fn inverse(&self) -> Pose {
        let rt = self.r.transpose();
        Pose {
            r: rt,
            t: -rt.apply(self.t),
        }
    }

    /// The 4×4 matrix, row-major.
    pub fn to_row_major(&self) -> [f32; 16] {
        let (a, b, c, t) = (self.r.cx, self.r.cy, self.r.cz, self.t);
        [
            a.x, b.x, c.x, t.x, //
            a.y, b.y, c.y, t.y, //
            a.z, b.z, c.z, t.z, //
            0.0, 0.0, 0.0, 1.0,
        ]
    }
}

/// Minimum-jerk profile: 0 at `s ≤ 0`, 1 at `s ≥ 1`, zero velocity and acceleration at both
/// ends (`10s³ − 15s⁴ + 6s⁵`), the classic model of human point-to-point reaching.
pub fn min_jerk(s: f32) -> f32 {
    let s = s.clamp(0.0, 1.0);
    s * s * s * (10.0 + s * (-15.0 + 6.0 * s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: V3, b: V3) -> bool {
        (a - b).norm() < 1e-5
    }

    #[test]
    fn pose_inverse_and_compose() {
        let p = Pose::new(Rot::axis_angle(v3(1.0, 2.0, 0.5), 0.7), v3(0.3, -0.2, 1.0));
        let q = Pose::new(Rot::about_z(-1.1), v3(0.0, 0.5, 0.0));
        let x = v3(0.1, 0.2, 0.3);
        assert!(close(p.inverse().apply(p.apply(x)), x));
        assert!(close(p.compose(&q).apply(x), p.apply(q.apply(x))));
        // Rotating the x axis a quarter turn about z gives the y axis.
        assert!(close(
            Rot::about_z(std::f32::consts::FRAC_PI_2).apply(v3(1.0, 0.0, 0.0)),
            v3(0.0, 1.0, 0.0)
        ));
        let m = p.to_row_major();
        let y = p.apply(x);
        assert!((m[4] * x.x + m[5] * x.y + m[6] * x.z + m[7] - y.y).abs() < 1e-6);
    }

    #[test]
    fn min_jerk_endpoints_and_symmetry() {
        assert_eq!(min_jerk(-1.0), 0.0);
        assert_eq!(min_jerk(2.0), 1.0);
        assert!((min_jerk(0.5) - 0.5).abs() < 1e-6);
        assert!((min_jerk(0.2) + min_jerk(0.8) - 1.0).abs() < 1e-6);
        // Flat start: tiny progress after 5% of the time.
        assert!(min_jerk(0.05) < 0.002);
    }
}
