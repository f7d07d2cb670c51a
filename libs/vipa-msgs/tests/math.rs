//! The pure math: motion tokenizer and camera projection.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use vipa_msgs::motion::Axis;
use vipa_msgs::{CameraIntrinsics, MotionBins, RigidTransform};

/// Deterministic uniform samples in `[lo, hi)` (a 64-bit LCG; no rand dependency needed).
fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

#[test]
fn paper_constants() {
    let b = MotionBins::PAPER;
    assert_eq!(b.bins, 1024);
    assert_eq!((b.x, b.y, b.z), ([-0.5, 0.5], [-0.5, 0.5], [0.0, 1.0]));
    assert_eq!(b.bin_width(Axis::X), 1.0 / 1024.0);
    assert_eq!(MotionBins::default(), b);
    assert_eq!(b.vocab_size(), 3072);
}

#[test]
fn encode_hand_computed_bins() {
    let b = MotionBins::PAPER;
    // x: (v + 0.5) · 1024; z: v · 1024.
    assert_eq!(b.encode([0.0, 0.0, 0.0]), [512, 512, 0]);
    assert_eq!(
        b.encode([-0.5, 0.5, 1.0]),
        [0, 1023, 1023],
        "edges: hi goes to the top bin"
    );
    assert_eq!(b.encode([0.25, -0.25, 0.25]), [768, 256, 256]);
    // Exactly on an edge lands in the bin above; just below stays in the bin below.
    let edge = -0.5 + 1.0 / 1024.0; // exact in f32
    assert_eq!(b.encode_axis(Axis::X, edge), 1);
    assert_eq!(b.encode_axis(Axis::X, edge - 1e-6), 0);
    // Bin centres: x bin 512 → −0.5 + 512.5 / 1024.
    assert_eq!(
        b.decode([512, 0, 1023]),
        [0.5 / 1024.0, -0.5 + 0.5 / 1024.0, 1.0 - 0.5 / 1024.0]
    );
}

#[test]
fn round_trip_error_is_at_most_half_a_bin_inside_the_box() {
    let b = MotionBins::PAPER;
    let n = 20_000;
    let xs = uniform(n, -0.5, 0.5, 1);
    let ys = uniform(n, -0.5, 0.5, 2);
    let zs = uniform(n, 0.0, 1.0, 3);
    let mut worst = 0.0f64;
    for i in 0..n {
        let p = [xs[i], ys[i], zs[i]];
        assert!(b.contains(p));
        let q = b.decode(b.encode(p));
        for a in 0..3 {
            worst = worst.max((f64::from(q[a]) - f64::from(p[a])).abs());
        }
    }
    // Half a bin is 0.488 mm; allow f32 rounding of the decoded centre.
    let half_bin = 0.5 / 1024.0;
    assert!(worst <= half_bin + 1e-7, "worst error {worst} m");
    assert!(worst <= 0.0005, "the paper's bound: 0.5 mm, got {worst}");
    // And the bound is tight (a uniform sample gets close to it), so the test can fail.
    assert!(worst > 0.9 * half_bin, "worst {worst}");
}

#[test]
fn outside_points_are_clipped_not_wrapped() {
    let b = MotionBins::PAPER;
    assert_eq!(b.encode([0.51, -0.51, 1.01]), [1023, 0, 1023]);
    assert_eq!(b.encode([7.0, -7.0, -3.0]), [1023, 0, 0]);
    assert_eq!(
        b.encode([f32::INFINITY, f32::NEG_INFINITY, 2.0]),
        [1023, 0, 1023]
    );
    // Wrapping would put 1.5 (one box width past the top) back in the middle.
    assert_eq!(b.encode_axis(Axis::X, 1.5), 1023);
    assert!(!b.contains([0.6, 0.0, 0.5]));
    assert_eq!(b.encode_checked([f32::NAN, 0.0, 0.5]), None);
    assert_eq!(b.encode_checked([0.0, 0.0, 0.5]), Some([512, 512, 512]));
    // Out-of-vocabulary ids decode to the top bin, not past the box.
    assert_eq!(b.decode_axis(Axis::Z, 5000), b.decode_axis(Axis::Z, 1023));
}

#[test]
fn encode_and_decode_are_monotonic() {
    let b = MotionBins::PAPER;
    for axis in Axis::ALL {
        let [lo, hi] = b.range(axis);
        let mut prev_bin = 0;
        let mut prev_val = f32::NEG_INFINITY;
        let steps = 10_000;
        for i in 0..=steps {
            // Sweep past both ends to cover clipping.
            let v = lo - 0.1 + (hi - lo + 0.2) * i as f32 / steps as f32;
            let bin = b.encode_axis(axis, v);
            assert!(bin >= prev_bin, "{axis:?} at {v}");
            prev_bin = bin;
            let centre = b.decode_axis(axis, bin);
            assert!(centre >= prev_val);
            prev_val = centre;
        }
        assert_eq!(prev_bin, 1023);
    }
    // Strictly increasing centres, one bin width apart.
    for bin in 1..1024 {
        let d = b.decode_axis(Axis::Y, bin) - b.decode_axis(Axis::Y, bin - 1);
        assert!((f64::from(d) - 1.0 / 1024.0).abs() < 1e-6, "{bin}: {d}");
    }
}

#[test]
fn vocab_ids_invert() {
    let b = MotionBins::PAPER;
    for axis in Axis::ALL {
        for bin in [0, 1, 511, 1023] {
            let id = b.vocab_id(axis, bin);
            assert_eq!(id, axis.index() as u32 * 1024 + bin);
            assert_eq!(b.from_vocab_id(id), Some((axis, bin)));
        }
    }
    assert_eq!(b.from_vocab_id(3072), None);
}

#[test]
fn custom_bins_validate() {
    assert!(MotionBins::new([-1.0, 1.0], [-1.0, 1.0], [0.0, 2.0], 256).is_ok());
    assert!(MotionBins::new([1.0, -1.0], [-1.0, 1.0], [0.0, 2.0], 256).is_err());
    assert!(MotionBins::new([-1.0, 1.0], [f32::NAN, 1.0], [0.0, 2.0], 256).is_err());
    assert!(MotionBins::new([-1.0, 1.0], [-1.0, 1.0], [0.0, 2.0], 0).is_err());
    let b = MotionBins::new([-1.0, 1.0], [-1.0, 1.0], [0.0, 2.0], 4).unwrap();
    // 4 bins of 0.5 m over [−1, 1]: 0.2 is in bin 2, centre 0.25.
    assert_eq!(b.encode_axis(Axis::X, 0.2), 2);
    assert_eq!(b.decode_axis(Axis::X, 2), 0.25);
}

// ---------------------------------------------------------------------------------------------
// Camera

fn k() -> CameraIntrinsics {
    CameraIntrinsics::new(500.0, 400.0, 320.0, 240.0, 640, 480).unwrap()
}

#[test]
fn project_hand_computed() {
    // u = 500 · 0.1 / 2 + 320 = 345, v = 400 · (−0.2) / 2 + 240 = 200.
    assert_eq!(k().project([0.1, -0.2, 2.0]), Some([345.0, 200.0]));
    assert_eq!(
        k().project([0.0, 0.0, 1.0]),
        Some([320.0, 240.0]),
        "optical axis"
    );
    assert_eq!(k().project([0.0, 0.0, 0.0]), None, "at the camera centre");
    assert_eq!(k().project([0.0, 0.0, -1.0]), None, "behind the camera");
    assert_eq!(k().project([f64::NAN, 0.0, 1.0]), None);
    assert_eq!(
        k().matrix(),
        [[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]]
    );
}

#[test]
fn unproject_inverts_project() {
    let us = uniform(200, -50.0, 700.0, 7);
    let vs = uniform(200, -50.0, 500.0, 8);
    let zs = uniform(200, 0.1, 5.0, 9);
    for i in 0..200 {
        let (uv, z) = ([f64::from(us[i]), f64::from(vs[i])], f64::from(zs[i]));
        let p = k().unproject(uv, z);
        assert_eq!(p[2], z);
        let back = k().project(p).unwrap();
        assert!((back[0] - uv[0]).abs() < 1e-9 && (back[1] - uv[1]).abs() < 1e-9);
    }
}

#[test]
fn contains_uses_pixel_edges() {
    assert!(k().contains([-0.5, -0.5]));
    assert!(k().contains([639.4, 479.4]));
    assert!(!k().contains([639.5, 10.0]));
    assert!(!k().contains([10.0, -0.6]));
}

#[test]
fn resize_maps_pixel_centres() {
    let small = k().resized(320, 240).unwrap();
    assert_eq!(
        (small.fx, small.fy, small.cx, small.cy),
        (250.0, 200.0, 159.75, 119.75)
    );
    // A point projects to u' = (u + 0.5) · s − 0.5 in the resized image.
    let p = [0.3, 0.1, 1.7];
    let (a, b) = (k().project(p).unwrap(), small.project(p).unwrap());
    assert!((b[0] - ((a[0] + 0.5) * 0.5 - 0.5)).abs() < 1e-9);
    assert!((b[1] - ((a[1] + 0.5) * 0.5 - 0.5)).abs() < 1e-9);
    let fov = CameraIntrinsics::from_hfov(90.0, 448, 448).unwrap();
    // tan(45°) = 1 → f = 224; the right edge (u = 447.5) is 45° off axis.
    assert!((fov.fx - 224.0).abs() < 1e-9);
    assert_eq!(fov.cx, 223.5);
}

#[test]
fn intrinsics_validate() {
    assert!(CameraIntrinsics::new(0.0, 1.0, 0.0, 0.0, 4, 4).is_err());
    assert!(CameraIntrinsics::new(1.0, f64::INFINITY, 0.0, 0.0, 4, 4).is_err());
    assert!(CameraIntrinsics::new(1.0, 1.0, f64::NAN, 0.0, 4, 4).is_err());
    assert!(CameraIntrinsics::new(1.0, 1.0, 0.0, 0.0, 0, 4).is_err());
}

fn rot_z(deg: f64) -> [[f64; 3]; 3] {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

#[test]
fn rigid_transform_math() {
    let t = RigidTransform::new(rot_z(90.0), [1.0, 2.0, 3.0]).unwrap();
    let p = t.apply([1.0, 0.0, 0.0]);
    // R x̂ = ŷ, plus t.
    for (g, w) in p.iter().zip([1.0, 3.0, 3.0]) {
        assert!((g - w).abs() < 1e-12, "{p:?}");
    }
    let id = t.inverse().compose(&t);
    for (g, w) in id
        .to_matrix4()
        .iter()
        .zip(RigidTransform::IDENTITY.to_matrix4())
    {
        assert!((g - w).abs() < 1e-12);
    }
    let q = [0.3, -0.7, 2.0];
    let back = t.inverse().apply(t.apply(q));
    assert!(back.iter().zip(q).all(|(a, b)| (a - b).abs() < 1e-12));
    assert!((t.rotation_angle_deg() - 90.0).abs() < 1e-9);
    let two = RigidTransform::new(rot_z(30.0), [0.0; 3]).unwrap();
    assert!((two.compose(&two).rotation_angle_deg() - 60.0).abs() < 1e-9);
    assert_eq!(RigidTransform::from_matrix4(&t.to_matrix4()).unwrap(), t);
    // Direction rotation ignores translation.
    let d = t.rotate([1.0, 0.0, 0.0]);
    assert!((d[1] - 1.0).abs() < 1e-12 && d[0].abs() < 1e-12);
}

#[test]
fn rigid_transform_validate() {
    let mirror = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
    assert!(RigidTransform::new(mirror, [0.0; 3]).is_err(), "det −1");
    assert!(RigidTransform::new(rot_z(10.0), [f64::NAN, 0.0, 0.0]).is_err());
    let mut m = RigidTransform::IDENTITY.to_matrix4();
    m[15] = 2.0;
    assert!(RigidTransform::from_matrix4(&m).is_err());
    assert!(RigidTransform::from_matrix4(&m[..12]).is_err());
}
