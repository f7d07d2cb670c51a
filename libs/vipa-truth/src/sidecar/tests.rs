//! Sidecar round-trip and failure tests on a hand-built clip (independent of the renderer).

use super::*;

pub(crate) fn sample_truth(width: u32, height: u32, frames: u32) -> ClipTruth {
    let info = ClipInfo {
        schema_version: SIDECAR_SCHEMA_VERSION,
        clip_id: "clip_0007".into(),
        clip_index: 7,
        seed: 42,
        fps: 15.0,
        width,
        height,
        num_frames: frames,
        intrinsics: Intrinsics {
            fx: 100.0,
            fy: 101.0,
            cx: 15.5,
            cy: 11.5,
        },
        instruction: "pick up the red mug and put it to the left of the blue cube".into(),
        target_object: "red mug".into(),
        reference_object: "blue cube".into(),
        relation: "left_of".into(),
        hands: vec![HandSide::Right, HandSide::Left],
        camera_moving: true,
        objects: vec![ObjectInfo {
            name: "red mug".into(),
            shape: "mug".into(),
            colour: "red".into(),
            rgb: [200, 30, 20],
            size_m: [0.08, 0.07, 0.09],
        }],
    };
    let frames = (0..frames)
        .map(|f| FrameTruth {
            frame_idx: f,
            timestamp_ns: u64::from(f) * 66_666_667,
            phase: "reach".into(),
            world_from_camera: std::array::from_fn(|k| k as f32 * 0.5 + f as f32),
            width,
            height,
            depth_mm: (0..width * height).map(|p| (p * 7 + f) as u16).collect(),
            hands: (0..(f % 3))
                .map(|h| HandTruth {
                    side: if h == 0 {
                        HandSide::Right
                    } else {
                        HandSide::Left
                    },
                    joints_cam: std::array::from_fn(|j| [j as f32, -(j as f32), 0.5 + f as f32]),
                    joints_2d: std::array::from_fn(|j| [j as f32 * 2.0, h as f32]),
                    visible: std::array::from_fn(|j| (j + h as usize).is_multiple_of(3)),
                    grasped_object: (h == 1).then(|| "red mug".to_owned()),
                })
                .collect(),
            objects: vec![ObjectTruth {
                name: "red mug".into(),
                bbox_xyxy: (f % 2 == 0).then_some([1.0, 2.0, 3.0, f as f32]),
                centre_cam: [0.1, 0.2, f as f32],
                visible_pixels: f * 10,
            }],
        })
        .collect();
    ClipTruth { info, frames }
}

/// What is written is read back exactly, including empty hand lists and null bboxes.
#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip_0007.truth.parquet");
    let truth = sample_truth(32, 24, 5);
    write_clip_truth(&path, &truth).unwrap();
    assert!(!dir.path().join("clip_0007.truth.parquet.partial").exists());
    let back = read_clip_truth(&path).unwrap();
    assert_eq!(back, truth);
    assert_eq!(back.frames[2].hands.len(), 2);
    assert!(back.frames[1].objects[0].bbox_xyxy.is_none());
}

/// Depth decoding: millimetres to metres, 0 stays "no surface".
#[test]
fn depth_decoding() {
    let mut truth = sample_truth(4, 3, 1);
    truth.frames[0].depth_mm = vec![0, 1000, 1500, 2, 0, 0, 0, 0, 0, 0, 0, 65535];
    let f = &truth.frames[0];
    let d = f.depth_m();
    assert_eq!(d.len(), 12);
    assert_eq!(d[0], 0.0);
    assert!((d[2] - 1.5).abs() < 1e-6);
    assert_eq!(f.depth_m_at(0, 0), None);
    assert!((f.depth_m_at(1, 0).unwrap() - 1.0).abs() < 1e-6);
    assert!((f.depth_m_at(3, 2).unwrap() - 65.535).abs() < 1e-3);
    assert_eq!(f.depth_m_at(4, 0), None);
    assert_eq!(f.depth_m_at(0, 3), None);
}

/// `project` and `unproject` are inverse, and the principal point projects from the optical axis.
#[test]
fn intrinsics_project_unproject() {
    let k = Intrinsics {
        fx: 200.0,
        fy: 210.0,
        cx: 159.5,
        cy: 119.5,
    };
    assert_eq!(k.project([0.0, 0.0, 0.7]), (159.5, 119.5));
    let (u, v) = k.project([0.1, -0.05, 0.5]);
    assert!((u - (159.5 + 40.0)).abs() < 1e-4 && (v - (119.5 - 21.0)).abs() < 1e-4);
    let p = k.unproject(u, v, 0.5);
    assert!((p[0] - 0.1).abs() < 1e-6 && (p[1] + 0.05).abs() < 1e-6);
}

/// Pose helpers: world_to_cam inverts cam_to_world for a rotated, translated pose.
#[test]
fn pose_helpers_invert() {
    let mut f = sample_truth(2, 2, 1).frames.remove(0);
    let (s, c) = (0.3f32.sin(), 0.3f32.cos());
    // Rotation about x by 0.3 rad, then translation (1, 2, 3).
    f.world_from_camera = [
        1.0, 0.0, 0.0, 1.0, //
        0.0, c, -s, 2.0, //
        0.0, s, c, 3.0, //
        0.0, 0.0, 0.0, 1.0,
    ];
    let p = [0.2, -0.4, 0.9];
    let w = f.cam_to_world(p);
    assert!((w[0] - 1.2).abs() < 1e-6);
    assert!((w[1] - (2.0 + c * -0.4 - s * 0.9)).abs() < 1e-6);
    let back = f.world_to_cam(w);
    for k in 0..3 {
        assert!((back[k] - p[k]).abs() < 1e-5);
    }
}

/// A truncated file and a non-Parquet file give a Parquet error naming the file.
#[test]
fn truncated_and_garbage_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip_0000.truth.parquet");
    write_clip_truth(&path, &sample_truth(16, 12, 3)).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let truncated = dir.path().join("truncated.truth.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_clip_truth(&truncated).unwrap_err();
    assert!(matches!(err, SidecarError::Parquet { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated.truth.parquet"), "{err}");

    let garbage = dir.path().join("garbage.truth.parquet");
    std::fs::write(&garbage, b"this is not parquet at all, just text").unwrap();
    let err = read_clip_truth(&garbage).unwrap_err();
    assert!(matches!(err, SidecarError::Parquet { .. }), "{err:?}");

    let missing = dir.path().join("missing.truth.parquet");
    let err = read_clip_truth(&missing).unwrap_err();
    assert!(matches!(err, SidecarError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.truth.parquet"));
}

/// Damaging bytes inside the column data is an error, never a panic or silently wrong data
/// that passes validation unnoticed in the depth length check.
#[test]
fn corrupted_column_data_is_an_error_or_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip_0000.truth.parquet");
    let truth = sample_truth(16, 12, 3);
    write_clip_truth(&path, &truth).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Overwrite a stretch right after the leading magic: page headers and data of the first
    // columns. Depending on which bytes get hit the reader fails to decode or (if only values
    // change) returns different values; it must not panic.
    for b in &mut bytes[4..64] {
        *b = 0xff;
    }
    let bad = dir.path().join("bad.truth.parquet");
    std::fs::write(&bad, &bytes).unwrap();
    match read_clip_truth(&bad) {
        Err(e) => assert!(e.to_string().contains("bad.truth.parquet"), "{e}"),
        Ok(back) => assert_ne!(back, truth),
    }
}

/// A Parquet file without the clip-info metadata, or of another schema version, is rejected
/// with an error that says so.
#[test]
fn missing_metadata_and_wrong_version() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::UInt32, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(UInt32Array::from(vec![1u32]))],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(&plain).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = read_clip_truth(&plain).unwrap_err();
    assert!(
        matches!(err, SidecarError::MissingMetadata { .. }),
        "{err:?}"
    );

    let mut truth = sample_truth(8, 6, 2);
    truth.info.schema_version = 99;
    let v99 = dir.path().join("v99.truth.parquet");
    write_clip_truth(&v99, &truth).unwrap();
    let err = read_clip_truth(&v99).unwrap_err();
    assert!(
        matches!(err, SidecarError::UnsupportedVersion { found: 99, .. }),
        "{err:?}"
    );
}

/// A sidecar whose clip info disagrees with its depth size names the column and row.
#[test]
fn depth_size_mismatch_names_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip_0001.truth.parquet");
    let mut truth = sample_truth(8, 6, 2);
    truth.frames[1].depth_mm.pop();
    write_clip_truth(&path, &truth).unwrap();
    let err = read_clip_truth(&path).unwrap_err();
    match &err {
        SidecarError::BadValue { column, row, .. } => {
            assert_eq!(*column, "depth_mm");
            assert_eq!(*row, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The depth column really is delta-encoded: a smooth 320x240 ramp costs far less than its
/// raw 2 bytes per pixel.
#[test]
fn smooth_depth_is_compact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp.truth.parquet");
    let mut truth = sample_truth(320, 240, 4);
    for f in &mut truth.frames {
        f.depth_mm = (0..240u32)
            .flat_map(|v| (0..320u32).map(move |u| (500 + v * 2 + u / 3) as u16))
            .collect();
    }
    write_clip_truth(&path, &truth).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let raw = 4 * 320 * 240 * 2;
    assert!(size * 8 < raw, "sidecar {size} B vs raw depth {raw} B");
    // And the depth leaf really got the delta encoding (a wrong column path would be ignored
    // silently by the writer).
    let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .metadata()
        .clone();
    let depth = meta
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "depth_mm.list.item")
        .expect("depth leaf column");
    assert!(
        depth
            .encodings()
            .any(|e| e == Encoding::DELTA_BINARY_PACKED)
    );
    assert_eq!(read_clip_truth(&path).unwrap(), truth);
}
