//! End-to-end checks of generated clips: ground truth against the renderer's own buffers,
//! determinism, camera motion, task semantics, and files on disk. Small images and few frames
//! keep every test well under a second or two.

// Test code: unwraps are the assertions, and joint/axis indices are the readable form here.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use vipa_synth::SynthConfig;
use vipa_synth::generate::{
    ClipScene, VISIBILITY_TOLERANCE_M, clip_paths, generate_clip, write_clip,
};
use vipa_synth::render::{LABEL_TABLE, label_hand, label_object};
use vipa_synth::sidecar::{FrameTruth, read_clip_info, read_clip_truth};

/// 96×72, 12 frames.
fn small() -> SynthConfig {
    SynthConfig {
        width: 96,
        height: 72,
        fps: 3.0,
        seconds: 4.0,
    }
}

/// For every in-image joint: `joints_2d` is the intrinsics projection of `joints_cam`; the
/// renderer's front surface at the projected pixel is never behind the joint centre (the joint's
/// own sphere is drawn there, so projection and rasterisation agree); where nothing lies in
/// front of the joint's sphere the pixel shows this hand (except where other geometry
/// interpenetrates the sphere, which must be rare); and `visible` is exactly "this hand's
/// label at the pixel, no more than radius + tolerance in front of the centre".
#[test]
fn joints_project_onto_their_hand() {
    let cfg = small();
    let (mut checked, mut visible, mut unobstructed, mut foreign) = (0, 0, 0, 0);
    for clip in 0..4 {
        let scene = ClipScene::new(cfg, 11, clip);
        let k = scene.intrinsics;
        for f in (0..cfg.num_frames()).step_by(2) {
            let state = scene.state(f);
            let (img, truth) = scene.render_frame(f, &state);
            for (h, hand) in truth.hands.iter().enumerate() {
                let radii = state.hands[h].pose.joint_radii();
                for j in 0..21 {
                    let p = hand.joints_cam[j];
                    let u = k.fx * p[0] / p[2] + k.cx;
                    let v = k.fy * p[1] / p[2] + k.cy;
                    assert!((u - hand.joints_2d[j][0]).abs() < 1e-3);
                    assert!((v - hand.joints_2d[j][1]).abs() < 1e-3);
                    let Some((depth, label)) = img.at(u.round() as i64, v.round() as i64) else {
                        assert!(!hand.visible[j], "off-image joint marked visible");
                        continue;
                    };
                    checked += 1;
                    let at = format!("clip {clip} frame {f} hand {h} joint {j}");
                    assert!(
                        depth <= p[2] + 1e-4,
                        "{at}: surface {depth} behind joint z {}",
                        p[2]
                    );
                    let clear = depth >= p[2] - radii[j] - VISIBILITY_TOLERANCE_M;
                    if clear {
                        unobstructed += 1;
                        if label != label_hand(h) {
                            foreign += 1;
                        }
                    }
                    if hand.visible[j] {
                        visible += 1;
                        assert_eq!(label, label_hand(h), "{at}");
                    }
                    assert_eq!(hand.visible[j], clear && label == label_hand(h), "{at}");
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} in-image joints");
    assert!(
        visible * 3 > checked,
        "only {visible}/{checked} joints visible"
    );
    assert!(
        foreign * 20 <= unobstructed,
        "{foreign}/{unobstructed} unobstructed joints show other geometry"
    );
}

/// The stored depth (millimetres) at a visible joint's pixel is the joint depth to within its
/// sphere radius (plus tolerance and the 0.5 mm rounding).
#[test]
fn depth_at_visible_joints_matches() {
    let cfg = small();
    let mut n = 0;
    for clip in 0..3 {
        let scene = ClipScene::new(cfg, 5, clip);
        for f in (0..cfg.num_frames()).step_by(3) {
            let state = scene.state(f);
            let (_, truth) = scene.render_frame(f, &state);
            for (h, hand) in truth.hands.iter().enumerate() {
                let radii = state.hands[h].pose.joint_radii();
                for j in (0..21).filter(|&j| hand.visible[j]) {
                    let [u, v] = hand.joints_2d[j];
                    let d = truth
                        .depth_m_at(u.round() as usize, v.round() as usize)
                        .expect("visible joint has a surface");
                    let z = hand.joints_cam[j][2];
                    assert!(
                        (d - z).abs() <= radii[j] + VISIBILITY_TOLERANCE_M + 6e-4,
                        "joint {j}: depth {d} vs z {z} (r {})",
                        radii[j]
                    );
                    n += 1;
                }
            }
        }
    }
    assert!(n > 50, "only {n} visible joints checked");
}

/// Table pixels, un-projected with the stored depth and intrinsics and moved to the world with
/// the stored pose, lie on the table plane z = 0.
#[test]
fn table_depth_is_consistent_with_pose_and_intrinsics() {
    let cfg = small();
    let scene = ClipScene::new(cfg, 3, 1);
    let k = scene.intrinsics;
    for f in [0, cfg.num_frames() - 1] {
        let state = scene.state(f);
        let (img, truth) = scene.render_frame(f, &state);
        let mut n = 0;
        for v in (0..72).step_by(5) {
            for u in (0..96).step_by(5) {
                if img.label[v * 96 + u] != LABEL_TABLE {
                    continue;
                }
                let d = truth.depth_m_at(u, v).unwrap();
                let p = truth.cam_to_world(k.unproject(u as f32, v as f32, d));
                // 0.5 mm depth rounding, magnified by the grazing angle: allow 2 mm.
                assert!(p[2].abs() < 0.002, "table point z {}", p[2]);
                n += 1;
            }
        }
        assert!(n > 50);
    }
}

/// The same seed gives identical frames and sidecar bytes; another seed gives other frames.
/// The mp4 is also byte-identical (libx264 is deterministic for a fixed input and settings).
#[test]
fn same_seed_same_bytes() {
    let cfg = SynthConfig {
        seconds: 2.0,
        ..small()
    };
    let a = generate_clip(cfg, 9, 2).unwrap();
    let b = generate_clip(cfg, 9, 2).unwrap();
    assert_eq!(a, b);
    let c = generate_clip(cfg, 10, 2).unwrap();
    assert_ne!(a.frames[0].bgr, c.frames[0].bgr);

    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    write_clip(d1.path(), &a).unwrap();
    write_clip(d2.path(), &b).unwrap();
    let (mp4_1, pq_1) = clip_paths(d1.path(), 2);
    let (mp4_2, pq_2) = clip_paths(d2.path(), 2);
    assert_eq!(std::fs::read(&pq_1).unwrap(), std::fs::read(&pq_2).unwrap());
    assert_eq!(
        std::fs::read(&mp4_1).unwrap(),
        std::fs::read(&mp4_2).unwrap()
    );
}

/// A clip does not depend on the clips generated before it (one RNG stream per clip).
#[test]
fn clips_are_independent_of_order() {
    let cfg = SynthConfig {
        seconds: 1.0,
        ..small()
    };
    let late = generate_clip(cfg, 0, 5).unwrap();
    let _ = generate_clip(cfg, 0, 4).unwrap();
    assert_eq!(generate_clip(cfg, 0, 5).unwrap(), late);
    assert_ne!(
        generate_clip(cfg, 0, 4).unwrap().truth.info,
        late.truth.info
    );
}

/// Written files read back: the sidecar equals the in-memory truth, the footer-only reader
/// agrees, the mp4 decodes to the right number and size of frames, close to the rendered ones.
#[test]
fn written_clip_round_trips() {
    let cfg = small();
    let clip = generate_clip(cfg, 1, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mp4, pq) = write_clip(dir.path(), &clip).unwrap();
    assert_eq!(read_clip_truth(&pq).unwrap(), clip.truth);
    assert_eq!(read_clip_info(&pq).unwrap(), clip.truth.info);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

    let decoded = vipa_synth::video::read_video_bgr(&mp4).unwrap();
    assert_eq!(decoded.len(), clip.frames.len());
    for (dec, orig) in decoded.iter().zip(&clip.frames) {
        assert_eq!(dec.len(), orig.bgr.len());
        let mean_abs: f64 = dec
            .iter()
            .zip(&orig.bgr)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / dec.len() as f64;
        assert!(mean_abs < 12.0, "lossy but close: mean abs diff {mean_abs}");
    }
}

/// The camera really moves in moving-camera clips and the images follow the stored poses:
/// a static object's centre, taken to the world with frame 0's pose and back with frame t's,
/// matches the stored centre, its projection moves by several pixels, and the rendered
/// object is at the predicted pixel.
#[test]
fn camera_motion_matches_poses() {
    let cfg = small();
    let clip = (0..40)
        .find(|&i| ClipScene::new(cfg, 0, i).plan().camera_moving)
        .expect("some clip has a moving camera");
    let scene = ClipScene::new(cfg, 0, clip);
    let k = scene.intrinsics;
    let plan = scene.plan();
    let statics: Vec<usize> = (0..plan.objects.len())
        .filter(|&o| o != plan.target)
        .collect();
    let last = cfg.num_frames() - 1;
    let (_, f0) = scene.render_frame(0, &scene.state(0));
    let (img_t, ft) = scene.render_frame(last, &scene.state(last));
    assert_ne!(f0.world_from_camera, ft.world_from_camera);
    let mut hits = 0;
    for &o in &statics {
        let world = f0.cam_to_world(f0.objects[o].centre_cam);
        let pred = ft.world_to_cam(world);
        for c in 0..3 {
            assert!((pred[c] - ft.objects[o].centre_cam[c]).abs() < 1e-4);
        }
        let (u0, v0) = k.project(f0.objects[o].centre_cam);
        let (ut, vt) = k.project(pred);
        assert!(
            ((ut - u0).powi(2) + (vt - v0).powi(2)).sqrt() > 1.0,
            "projection barely moved"
        );
        if let Some((_, label)) = img_t.at(ut.round() as i64, vt.round() as i64)
            && label == label_object(o)
        {
            hits += 1;
        }
    }
    // A hand may cover an object; most static objects must be where predicted.
    assert!(
        hits * 2 >= statics.len(),
        "{hits}/{} objects at predicted pixel",
        statics.len()
    );

    // Static-camera clips keep one pose.
    let still = (0..40)
        .find(|&i| !ClipScene::new(cfg, 0, i).plan().camera_moving)
        .unwrap();
    let s = ClipScene::new(cfg, 0, still);
    assert_eq!(
        s.state(0).world_from_camera,
        s.state(last).world_from_camera
    );
}

fn world_centre(f: &FrameTruth, name: &str) -> [f32; 3] {
    let o = f.objects.iter().find(|o| o.name == name).unwrap();
    f.cam_to_world(o.centre_cam)
}

/// The instruction names the target and reference; the target is held during `move`, ends up
/// on the table in the stated relation to the reference (as seen from the first camera pose),
/// and every other object stays put.
#[test]
fn task_semantics_hold() {
    let cfg = SynthConfig {
        width: 32,
        height: 24,
        ..small()
    };
    for clip in 0..12 {
        let g = generate_clip(cfg, 21, clip).unwrap();
        let info = &g.truth.info;
        assert!(
            info.instruction.contains(&info.target_object),
            "{}",
            info.instruction
        );
        assert!(info.instruction.contains(&info.reference_object));
        assert_ne!(info.target_object, info.reference_object);
        let names: std::collections::BTreeSet<_> = info.objects.iter().map(|o| &o.name).collect();
        assert_eq!(names.len(), info.objects.len(), "object names are unique");

        let first = &g.truth.frames[0];
        let last = g.truth.frames.last().unwrap();
        let held: Vec<_> = g
            .truth
            .frames
            .iter()
            .filter(|f| f.phase == "move")
            .map(|f| f.hands[0].grasped_object.clone())
            .collect();
        assert!(!held.is_empty());
        assert!(
            held.iter()
                .all(|h| h.as_deref() == Some(info.target_object.as_str()))
        );

        let t0 = world_centre(first, &info.target_object);
        let t1 = world_centre(last, &info.target_object);
        let r = world_centre(last, &info.reference_object);
        assert!((t1[2] - t0[2]).abs() < 1e-4, "target back on the table");
        let m = &first.world_from_camera;
        let right = [m[0], m[4]];
        let n = (right[0] * right[0] + right[1] * right[1]).sqrt();
        let right = [right[0] / n, right[1] / n];
        let forward = [-right[1], right[0]];
        let delta = [t1[0] - r[0], t1[1] - r[1]];
        let along_right = delta[0] * right[0] + delta[1] * right[1];
        let along_fwd = delta[0] * forward[0] + delta[1] * forward[1];
        let ok = match info.relation.as_str() {
            "left_of" => along_right < -0.05,
            "right_of" => along_right > 0.05,
            "in_front_of" => along_fwd < -0.05,
            "behind" => along_fwd > 0.05,
            "next_to" => along_right.abs() > 0.05,
            other => panic!("unknown relation {other}"),
        };
        assert!(
            ok,
            "clip {clip}: {} ({along_right}, {along_fwd})",
            info.instruction
        );
        for o in info.objects.iter().filter(|o| o.name != info.target_object) {
            let a = world_centre(first, &o.name);
            let b = world_centre(last, &o.name);
            assert!(
                (0..3).all(|c| (a[c] - b[c]).abs() < 1e-4),
                "{} moved",
                o.name
            );
        }
    }
}

/// At the end of the grasp the grasped object sits inside the hand: its centre is within a few
/// centimetres of the fingertips' centroid.
#[test]
fn hand_reaches_the_target() {
    let cfg = small();
    for clip in 0..6 {
        let scene = ClipScene::new(cfg, 2, clip);
        let plan = scene.plan();
        let f = (0..cfg.num_frames())
            .find(|&f| scene.state(f).phase == "move")
            .unwrap();
        let state = scene.state(f);
        let joints = state.hands[0].pose.joints_world();
        let tips = (joints[4] + joints[8] + joints[12]) * (1.0 / 3.0);
        let obj = &plan.objects[plan.target];
        let centre = state.objects[plan.target].apply(obj.centre_local());
        let d = (tips - centre).norm();
        assert!(d < 0.06, "clip {clip}: tips {d} m from {}", obj.name());
    }
}
