//! Every payload: encode → decode gives the same value, and malformed messages give the
//! right error variant naming the right field or key.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, StringArray,
    StructArray, UInt8Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Fields};
use vipa_msgs::control::kind_of;
use vipa_msgs::hands::NUM_JOINTS;
use vipa_msgs::meta::keys;
use vipa_msgs::*;

fn header() -> StreamHeader {
    StreamHeader {
        seq: 7,
        clip_id: "arctic/s01/box_grab_01".into(),
        frame_idx: 42,
        timestamp_ns: 1_400_000_000,
    }
}

fn round_trip<P: Payload + PartialEq + std::fmt::Debug>(p: &P) -> (ArrayRef, Metadata) {
    let (array, meta) = p.to_arrow();
    let back = P::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(&back, p);
    assert_eq!(kind_of(&meta), Some(P::KIND));
    assert_eq!(
        meta.get(keys::SCHEMA_VERSION),
        Some(&MetaValue::Integer(SCHEMA_VERSION))
    );
    (array, meta)
}

fn without(meta: &Metadata, key: &str) -> Metadata {
    let mut m = meta.clone();
    assert!(m.remove(key).is_some(), "test bug: no key {key}");
    m
}

fn with(meta: &Metadata, key: &str, value: MetaValue) -> Metadata {
    let mut m = meta.clone();
    m.insert(key.into(), value);
    m
}

#[track_caller]
fn assert_missing<T: std::fmt::Debug>(r: Result<T, MsgError>, key: &str) {
    match r {
        Err(MsgError::MissingKey { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected MissingKey({key}), got {other:?}"),
    }
}

#[track_caller]
fn assert_bad_meta<T: std::fmt::Debug>(r: Result<T, MsgError>, key: &str) {
    match r {
        Err(MsgError::BadMeta { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected BadMeta({key}), got {other:?}"),
    }
}

#[track_caller]
fn assert_dtype<T: std::fmt::Debug>(r: Result<T, MsgError>, field: &str) {
    match r {
        Err(MsgError::WrongDtype { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected WrongDtype({field}), got {other:?}"),
    }
}

#[track_caller]
fn assert_shape<T: std::fmt::Debug>(r: Result<T, MsgError>, field: &str) {
    match r {
        Err(MsgError::WrongShape { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected WrongShape({field}), got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, MsgError>, field: &str) {
    match r {
        Err(MsgError::Invalid { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected Invalid({field}), got {other:?}"),
    }
}

/// `rows` with column `name` replaced by `column` (its field type follows the column).
fn replace_column(rows: &ArrayRef, name: &str, column: ArrayRef) -> ArrayRef {
    let rows = rows.as_any().downcast_ref::<StructArray>().unwrap();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in rows.fields().iter().zip(rows.columns()) {
        if f.name() == name {
            fields.push(Field::new(name, column.data_type().clone(), true));
            columns.push(column.clone());
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    Arc::new(StructArray::try_new(Fields::from(fields), columns, None).unwrap())
}

/// `rows` without column `name`.
fn drop_column(rows: &ArrayRef, name: &str) -> ArrayRef {
    let rows = rows.as_any().downcast_ref::<StructArray>().unwrap();
    let (fields, columns): (Vec<_>, Vec<_>) = rows
        .fields()
        .iter()
        .zip(rows.columns())
        .filter(|(f, _)| f.name() != name)
        .map(|(f, c)| (f.as_ref().clone(), c.clone()))
        .unzip();
    Arc::new(StructArray::try_new(Fields::from(fields), columns, None).unwrap())
}

fn f32_lists(rows: usize, size: i32) -> ArrayRef {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Float32Array::from(vec![0.5; rows * size as usize]);
    Arc::new(FixedSizeListArray::try_new(item, size, Arc::new(values), None).unwrap())
}

// ---------------------------------------------------------------------------------------------
// ImageFrame

fn image() -> ImageFrame {
    let pixels: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
    ImageFrame::new(header(), 4, 3, Encoding::Rgb8, pixels).unwrap()
}

#[test]
fn rgb_of_every_encoding() {
    let rgb = image();
    assert!(matches!(rgb.rgb(), std::borrow::Cow::Borrowed(_)));
    assert_eq!(rgb.rgb().as_ref(), rgb.bytes());
    let bgr = ImageFrame::new(header(), 2, 1, Encoding::Bgr8, vec![1u8, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(bgr.rgb().as_ref(), &[3, 2, 1, 6, 5, 4]);
    let mono = ImageFrame::new(header(), 2, 1, Encoding::Mono8, vec![7u8, 9]).unwrap();
    assert_eq!(mono.rgb().as_ref(), &[7, 7, 7, 9, 9, 9]);
}

#[test]
fn image_round_trip_shares_the_buffer() {
    let f = image();
    let (array, meta) = round_trip(&f);
    assert_eq!(
        meta.get(keys::PRIMITIVE),
        Some(&MetaValue::String("image".into()))
    );
    let back = ImageFrame::from_arrow(array.as_ref(), &meta).unwrap();
    // Zero-copy: the decoded pixels point at the sent buffer.
    assert_eq!(back.bytes().as_ptr(), f.bytes().as_ptr());
    assert_eq!(back.bytes()[3 * (4 + 1)], 15, "row 1, col 1, channel 0");
}

#[test]
fn image_errors() {
    let (array, meta) = image().to_arrow();
    assert_dtype(
        ImageFrame::from_arrow(&Float32Array::from(vec![0.0; 36]), &meta),
        "pixels",
    );
    assert_shape(
        ImageFrame::from_arrow(&UInt8Array::from(vec![0u8; 35]), &meta),
        "pixels",
    );
    assert_shape(
        ImageFrame::from_arrow(
            array.as_ref(),
            &with(&meta, keys::ENCODING, MetaValue::String("mono8".into())),
        ),
        "pixels",
    );
    assert_missing(
        ImageFrame::from_arrow(array.as_ref(), &without(&meta, keys::WIDTH)),
        "width",
    );
    assert_missing(
        ImageFrame::from_arrow(array.as_ref(), &without(&meta, keys::SEQ)),
        "seq",
    );
    assert_bad_meta(
        ImageFrame::from_arrow(
            array.as_ref(),
            &with(&meta, keys::ENCODING, MetaValue::String("yuv".into())),
        ),
        "encoding",
    );
    assert_bad_meta(
        ImageFrame::from_arrow(
            array.as_ref(),
            &with(&meta, keys::HEIGHT, MetaValue::Integer(-3)),
        ),
        "height",
    );
    assert_bad_meta(
        ImageFrame::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SEQ, MetaValue::String("7".into())),
        ),
        "seq",
    );
}

// ---------------------------------------------------------------------------------------------
// TensorMsg

fn tensor() -> TensorMsg {
    let values: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.25).collect();
    TensorMsg::from_f32(
        header(),
        vec![2, 3, 4],
        &["frames", "tokens", "channels"],
        values,
    )
    .unwrap()
}

#[test]
fn tensor_round_trip() {
    let t = tensor();
    let (array, meta) = round_trip(&t);
    let back = TensorMsg::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(
        back.expect_axes(&["frames", "tokens", "channels"]).unwrap(),
        &[2, 3, 4]
    );
    // [1, 2, 3] → flat index 1·12 + 2·4 + 3 = 23.
    assert_eq!(back.f32_values().unwrap()[23], 23.0 * 0.25);
    assert_shape(back.expect_axes(&["tokens", "channels"]), "axes");

    let ids = TensorMsg::new(
        header(),
        vec![5],
        vec!["tokens".into()],
        DType::U32,
        Arc::new(UInt32Array::from(vec![1u32, 2, 3, 4, 5])),
    )
    .unwrap();
    round_trip(&ids);
    assert_dtype(ids.f32_values(), "values");
}

#[test]
fn tensor_errors() {
    let (array, meta) = tensor().to_arrow();
    assert_dtype(
        TensorMsg::from_arrow(&Float64Array::from(vec![0.0; 24]), &meta),
        "values",
    );
    assert_shape(
        TensorMsg::from_arrow(&Float32Array::from(vec![0.0; 23]), &meta),
        "values",
    );
    assert_shape(
        TensorMsg::from_arrow(
            array.as_ref(),
            &with(&meta, keys::AXES, MetaValue::ListString(vec!["a".into()])),
        ),
        "axes",
    );
    assert_missing(
        TensorMsg::from_arrow(array.as_ref(), &without(&meta, keys::SHAPE)),
        "shape",
    );
    assert_missing(
        TensorMsg::from_arrow(array.as_ref(), &without(&meta, keys::DTYPE)),
        "dtype",
    );
    assert_bad_meta(
        TensorMsg::from_arrow(
            array.as_ref(),
            &with(&meta, keys::DTYPE, MetaValue::String("q4".into())),
        ),
        "dtype",
    );
    assert_bad_meta(
        TensorMsg::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![2, -3, 4])),
        ),
        "shape",
    );
    // A hostile shape whose product overflows must be an error, not a panic.
    let huge = MetaValue::ListInt(vec![i64::MAX, i64::MAX, 4]);
    assert_shape(
        TensorMsg::from_arrow(array.as_ref(), &with(&meta, keys::SHAPE, huge)),
        "shape",
    );
    let with_null = Float32Array::from(vec![Some(1.0f32), None]);
    let m = with(&meta, keys::SHAPE, MetaValue::ListInt(vec![2, 1, 1]));
    assert_invalid(TensorMsg::from_arrow(&with_null, &m), "values");
}

// ---------------------------------------------------------------------------------------------
// Depth and point maps

fn depth() -> DepthMap {
    let mut d: Vec<f32> = (0..12).map(|i| 0.5 + i as f32 * 0.1).collect();
    d[5] = f32::NAN;
    DepthMap::new(header(), 3, 4, d).unwrap()
}

#[test]
fn depth_round_trip_and_generic_tensor_view() {
    let d = depth();
    let (array, meta) = d.to_arrow();
    let back = DepthMap::from_arrow(array.as_ref(), &meta).unwrap();
    // NaN != NaN, so compare bit patterns.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(back.values()), bits(d.values()));
    assert_eq!((back.height, back.width, &back.header), (3, 4, &d.header));
    assert_eq!(back.at(0, 1), Some(0.6));
    assert_eq!(back.at(1, 1), None, "NaN pixel is invalid");
    assert_eq!(back.at(3, 0), None, "outside");
    // Any tensor consumer can read it.
    let t = TensorMsg::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(t.expect_axes(&["h", "w"]).unwrap(), &[3, 4]);
    assert_eq!(
        meta.get(keys::FRAME),
        Some(&MetaValue::String("camera".into()))
    );
    assert_eq!(meta.get(keys::UNITS), Some(&MetaValue::String("m".into())));
}

#[test]
fn depth_errors() {
    let (array, meta) = depth().to_arrow();
    assert_dtype(
        DepthMap::from_arrow(&Float64Array::from(vec![1.0; 12]), &meta),
        "depth",
    );
    assert_shape(
        DepthMap::from_arrow(&Float32Array::from(vec![1.0; 11]), &meta),
        "depth",
    );
    assert_missing(
        DepthMap::from_arrow(array.as_ref(), &without(&meta, keys::UNITS)),
        "units",
    );
    assert_missing(
        DepthMap::from_arrow(array.as_ref(), &without(&meta, keys::CLIP_ID)),
        "clip_id",
    );
    assert_bad_meta(
        DepthMap::from_arrow(
            array.as_ref(),
            &with(&meta, keys::UNITS, MetaValue::String("mm".into())),
        ),
        "units",
    );
    assert_bad_meta(
        DepthMap::from_arrow(
            array.as_ref(),
            &with(&meta, keys::FRAME, MetaValue::String("world".into())),
        ),
        "frame",
    );
    assert_bad_meta(
        DepthMap::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![12])),
        ),
        "shape",
    );
    assert_bad_meta(
        DepthMap::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![0, 4])),
        ),
        "shape",
    );
    // A point map is not a depth map.
    let (parray, pmeta) = point_map().to_arrow();
    assert_bad_meta(DepthMap::from_arrow(parray.as_ref(), &pmeta), "axes");
}

fn point_map() -> PointMap {
    let p: Vec<f32> = (0..2 * 3 * 3).map(|i| i as f32 * 0.1 + 0.1).collect();
    PointMap::new(header(), 2, 3, p).unwrap()
}

#[test]
fn point_map_round_trip() {
    let p = point_map();
    let (array, meta) = round_trip(&p);
    let back = PointMap::from_arrow(array.as_ref(), &meta).unwrap();
    // Pixel (1, 2) is point 5: values 15..18 → 1.6, 1.7, 1.8.
    let got = back.at(1, 2).unwrap();
    for (g, w) in got.iter().zip([1.6f32, 1.7, 1.8]) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn point_map_errors() {
    let (array, meta) = point_map().to_arrow();
    assert_dtype(
        PointMap::from_arrow(&UInt8Array::from(vec![0u8; 18]), &meta),
        "points",
    );
    assert_shape(
        PointMap::from_arrow(&Float32Array::from(vec![0.0; 12]), &meta),
        "points",
    );
    assert_bad_meta(
        PointMap::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![2, 3, 4])),
        ),
        "shape",
    );
    assert_missing(
        PointMap::from_arrow(array.as_ref(), &without(&meta, keys::AXES)),
        "axes",
    );
    assert_missing(
        PointMap::from_arrow(array.as_ref(), &without(&meta, keys::FRAME)),
        "frame",
    );
}

#[test]
fn point_map_from_depth_back_projects_pixel_centres() {
    // fx=2, fy=4, cx=1, cy=0.5 on a 3×2 image; depth 2 everywhere except one invalid pixel.
    let k = CameraIntrinsics::new(2.0, 4.0, 1.0, 0.5, 3, 2).unwrap();
    let mut z = vec![2.0f32; 6];
    z[1] = 0.0;
    let d = DepthMap::new(header(), 2, 3, z).unwrap();
    let p = PointMap::from_depth(&d, &k).unwrap();
    // (row 1, col 2): x = (2 − 1) / 2 · 2 = 1, y = (1 − 0.5) / 4 · 2 = 0.25.
    assert_eq!(p.at(1, 2), Some([1.0, 0.25, 2.0]));
    // (row 0, col 0): x = −1, y = −0.25.
    assert_eq!(p.at(0, 0), Some([-1.0, -0.25, 2.0]));
    assert_eq!(p.at(0, 1), None, "depth 0 is no measurement");
    assert!(p.values()[3..6].iter().all(|v| v.is_nan()));
    let small = CameraIntrinsics::new(2.0, 4.0, 1.0, 0.5, 2, 2).unwrap();
    assert_shape(PointMap::from_depth(&d, &small), "intrinsics");
}

// ---------------------------------------------------------------------------------------------
// Camera

#[test]
fn intrinsics_round_trip_and_errors() {
    let m = CameraIntrinsicsMsg {
        header: header(),
        intrinsics: CameraIntrinsics::new(500.0, 400.0, 319.5, 239.5, 640, 480).unwrap(),
    };
    let (array, meta) = round_trip(&m);
    assert_dtype(
        CameraIntrinsicsMsg::from_arrow(&Float32Array::from(vec![1.0; 4]), &meta),
        "fx_fy_cx_cy",
    );
    assert_shape(
        CameraIntrinsicsMsg::from_arrow(&Float64Array::from(vec![1.0; 9]), &meta),
        "fx_fy_cx_cy",
    );
    assert_missing(
        CameraIntrinsicsMsg::from_arrow(array.as_ref(), &without(&meta, keys::HEIGHT)),
        "height",
    );
    assert_invalid(
        CameraIntrinsicsMsg::from_arrow(&Float64Array::from(vec![-1.0, 1.0, 0.0, 0.0]), &meta),
        "fx",
    );
}

#[test]
fn pose_round_trip_and_errors() {
    let c = std::f64::consts::FRAC_1_SQRT_2;
    let m = CameraPoseMsg {
        header: header(),
        world_from_camera: RigidTransform::new(
            [[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]],
            [0.1, -0.2, 1.5],
        )
        .unwrap(),
    };
    let (array, meta) = round_trip(&m);
    assert_dtype(
        CameraPoseMsg::from_arrow(&Float32Array::from(vec![0.0; 16]), &meta),
        "world_from_camera",
    );
    assert_shape(
        CameraPoseMsg::from_arrow(&Float64Array::from(vec![0.0; 12]), &meta),
        "world_from_camera",
    );
    assert_missing(
        CameraPoseMsg::from_arrow(array.as_ref(), &without(&meta, keys::UNITS)),
        "units",
    );
    // A scaled "rotation" is not rigid.
    let mut scaled = RigidTransform::IDENTITY.to_matrix4();
    scaled[0] = 2.0;
    assert_invalid(
        CameraPoseMsg::from_arrow(&Float64Array::from(scaled.to_vec()), &meta),
        "world_from_camera",
    );
}

// ---------------------------------------------------------------------------------------------
// Hands

fn hand(side: HandSide, offset: f32) -> Hand {
    Hand {
        side,
        joints_xyz: std::array::from_fn(|j| {
            [offset + j as f32 * 0.01, -0.1, 0.5 + j as f32 * 0.001]
        }),
        confidence: std::array::from_fn(|j| if j == 20 { 0.0 } else { 0.9 }),
        joints_uv: std::array::from_fn(|j| [100.0 + j as f32, 200.0 - j as f32]),
    }
}

fn hands() -> HandsMsg {
    HandsMsg {
        header: header(),
        hands: vec![hand(HandSide::Left, -0.2), hand(HandSide::Right, 0.2)],
    }
}

#[test]
fn hands_round_trip() {
    let h = hands();
    let (array, _) = round_trip(&h);
    assert_eq!(array.len(), 2, "one row per hand");
    let right = h.hand(HandSide::Right).unwrap();
    assert_eq!(right.wrist(), [0.2, -0.1, 0.5]);
    round_trip(&HandsMsg {
        header: header(),
        hands: vec![],
    });
}

#[test]
fn hands_decode_a_sliced_batch() {
    // Row offsets must be honoured: decode rows 1.. of a 2-row array.
    let (array, meta) = hands().to_arrow();
    let back = HandsMsg::from_arrow(array.slice(1, 1).as_ref(), &meta).unwrap();
    assert_eq!(back.hands, vec![hand(HandSide::Right, 0.2)]);
}

#[test]
fn hands_errors() {
    let (array, meta) = hands().to_arrow();
    assert_dtype(
        HandsMsg::from_arrow(&Float32Array::from(vec![0.0; 63]), &meta),
        "hands",
    );
    assert_dtype(
        HandsMsg::from_arrow(
            replace_column(&array, "side", Arc::new(Int32Array::from(vec![0, 1]))).as_ref(),
            &meta,
        ),
        "side",
    );
    assert_dtype(
        HandsMsg::from_arrow(drop_column(&array, "confidence").as_ref(), &meta),
        "confidence",
    );
    assert_shape(
        HandsMsg::from_arrow(
            replace_column(&array, "joints_xyz", f32_lists(2, 60)).as_ref(),
            &meta,
        ),
        "joints_xyz",
    );
    assert_invalid(
        HandsMsg::from_arrow(
            replace_column(
                &array,
                "side",
                Arc::new(StringArray::from(vec!["left", "middle"])),
            )
            .as_ref(),
            &meta,
        ),
        "side",
    );
    assert_missing(
        HandsMsg::from_arrow(array.as_ref(), &without(&meta, "joint_order")),
        "joint_order",
    );
    assert_bad_meta(
        HandsMsg::from_arrow(
            array.as_ref(),
            &with(&meta, "joint_order", MetaValue::String("openpose".into())),
        ),
        "joint_order",
    );
}

#[test]
fn joint_table_is_consistent() {
    assert_eq!(JOINT_NAMES.len(), NUM_JOINTS);
    assert_eq!(JOINT_NAMES[WRIST], "wrist");
    for (i, tip) in hands::FINGERTIPS.iter().enumerate() {
        assert!(JOINT_NAMES[*tip].ends_with("_tip"), "{i}");
    }
    // Every joint but the wrist has exactly one parent, listed before it in its chain.
    for j in 1..NUM_JOINTS {
        let parents: Vec<_> = hands::BONES.iter().filter(|(_, c)| *c == j).collect();
        assert_eq!(parents.len(), 1, "joint {j}");
        assert!(parents[0].0 < j);
    }
    let mut names = JOINT_NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), NUM_JOINTS);
}

// ---------------------------------------------------------------------------------------------
// Detections

fn detections() -> DetectionsMsg {
    DetectionsMsg {
        header: header(),
        detections: vec![
            Detection {
                name: "black mug".into(),
                box_xyxy: [10.0, 20.0, 50.5, 80.0],
                center_xyz: Some([-0.1, 0.05, 0.62]),
                score: 0.91,
            },
            Detection {
                name: "white paper".into(),
                box_xyxy: [0.0, 0.0, 5.0, 5.0],
                center_xyz: None,
                score: 0.4,
            },
            Detection {
                name: "black mug".into(),
                box_xyxy: [11.0, 21.0, 49.0, 79.0],
                center_xyz: None,
                score: 0.95,
            },
        ],
    }
}

#[test]
fn detections_round_trip() {
    let d = detections();
    round_trip(&d);
    assert_eq!(d.best("black mug").unwrap().score, 0.95);
    assert!(d.best("spoon").is_none());
    round_trip(&DetectionsMsg {
        header: header(),
        detections: vec![],
    });
}

#[test]
fn detections_errors() {
    let (array, meta) = detections().to_arrow();
    assert_dtype(
        DetectionsMsg::from_arrow(
            replace_column(&array, "score", Arc::new(Float64Array::from(vec![0.5; 3]))).as_ref(),
            &meta,
        ),
        "score",
    );
    assert_shape(
        DetectionsMsg::from_arrow(
            replace_column(&array, "box_xyxy", f32_lists(3, 3)).as_ref(),
            &meta,
        ),
        "box_xyxy",
    );
    assert_missing(
        DetectionsMsg::from_arrow(array.as_ref(), &without(&meta, keys::FRAME)),
        "frame",
    );
    assert_dtype(
        DetectionsMsg::from_arrow(drop_column(&array, "name").as_ref(), &meta),
        "name",
    );
    // x0 > x1.
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let boxes = Float32Array::from(vec![
        5.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0,
    ]);
    let boxes = FixedSizeListArray::try_new(item, 4, Arc::new(boxes), None).unwrap();
    assert_invalid(
        DetectionsMsg::from_arrow(
            replace_column(&array, "box_xyxy", Arc::new(boxes)).as_ref(),
            &meta,
        ),
        "box_xyxy",
    );
}

// ---------------------------------------------------------------------------------------------
// Motion tokens

fn motion() -> MotionTokens {
    let waypoints = [[0.0, 0.0, 0.5], [0.1, -0.05, 0.45], [0.7, -0.9, 1.2]];
    MotionTokens::from_waypoints(
        header(),
        HandSide::Right,
        5.0,
        MotionBins::PAPER,
        &waypoints,
    )
    .unwrap()
}

#[test]
fn motion_round_trip() {
    let m = motion();
    let (array, meta) = round_trip(&m);
    assert_eq!(m.waypoints(), 3);
    // 0.0 on x is bin floor(0.5 · 1024) = 512; 0.5 on z is 512; the third point is clipped.
    assert_eq!(m.token(0), Some([512, 512, 512]));
    assert_eq!(m.token(2), Some([1023, 0, 1023]));
    assert_eq!(m.token(3), None);
    let t = TensorMsg::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(t.expect_axes(&["waypoints", "xyz"]).unwrap(), &[3, 3]);
    assert_eq!(m.vocab_ids()[..3], [512, 1024 + 512, 2048 + 512]);
}

#[test]
fn motion_errors() {
    let (array, meta) = motion().to_arrow();
    assert_dtype(
        MotionTokens::from_arrow(&Int32Array::from(vec![0; 9]), &meta),
        "tokens",
    );
    assert_shape(
        MotionTokens::from_arrow(&UInt32Array::from(vec![0u32; 8]), &meta),
        "tokens",
    );
    assert_missing(
        MotionTokens::from_arrow(array.as_ref(), &without(&meta, "side")),
        "side",
    );
    assert_missing(
        MotionTokens::from_arrow(array.as_ref(), &without(&meta, "z_range")),
        "z_range",
    );
    assert_bad_meta(
        MotionTokens::from_arrow(
            array.as_ref(),
            &with(&meta, "x_range", MetaValue::ListFloat(vec![0.0])),
        ),
        "x_range",
    );
    assert_invalid(
        MotionTokens::from_arrow(
            array.as_ref(),
            &with(&meta, "y_range", MetaValue::ListFloat(vec![1.0, 0.0])),
        ),
        "y_range",
    );
    assert_invalid(
        MotionTokens::from_arrow(
            &UInt32Array::from(vec![0u32, 1024, 5, 0, 0, 0, 0, 0, 0]),
            &meta,
        ),
        "tokens",
    );
    assert_invalid(
        MotionTokens::from_arrow(
            array.as_ref(),
            &with(&meta, "sample_rate_hz", MetaValue::Float(0.0)),
        ),
        "sample_rate_hz",
    );
    assert_bad_meta(
        MotionTokens::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![3, 2])),
        ),
        "shape",
    );
}

// ---------------------------------------------------------------------------------------------
// Q&A

fn qa() -> QaBatch {
    QaBatch {
        header: header(),
        samples: vec![
            QaSample {
                question_id: "q-0001".into(),
                task: TaskType::SpatialRelation,
                clip_id: "arctic/s01/box_grab_01".into(),
                frame_indices: vec![10, 11, 12],
                question:
                    "Where is the black mug in relation to the right hand, and how far away is it?"
                        .into(),
                answer: "left and down and forward, 0.44m".into(),
                target: QaTarget {
                    direction: Some([-0.5, 0.3, 0.8]),
                    distance_m: Some(0.44),
                    degrees: None,
                },
                motion_tokens: None,
            },
            QaSample {
                question_id: "q-0002".into(),
                task: TaskType::CameraMovement,
                clip_id: "hoi4d/c7".into(),
                frame_indices: vec![0, 30],
                question: "How did the camera move between these two frames?".into(),
                answer: "left, 12.384 degrees".into(),
                target: QaTarget {
                    direction: Some([-1.0, 0.0, 0.0]),
                    distance_m: None,
                    degrees: Some(12.384),
                },
                motion_tokens: None,
            },
            QaSample {
                question_id: "q-0003".into(),
                task: TaskType::MotionGeneration,
                clip_id: "taco/x".into(),
                frame_indices: vec![5],
                question: "Pick up the spoon.".into(),
                answer: "<motion>".into(),
                target: QaTarget::default(),
                motion_tokens: Some(vec![[512, 500, 300], [520, 498, 310]]),
            },
        ],
    }
}

#[test]
fn qa_round_trip() {
    let q = qa();
    let (array, meta) = round_trip(&q);
    assert_eq!(array.len(), 3);
    let back = QaBatch::from_arrow(array.slice(1, 2).as_ref(), &meta).unwrap();
    assert_eq!(back.samples, q.samples[1..]);
    for t in TaskType::ALL {
        assert_eq!(TaskType::parse(t.as_str()), Some(t));
    }
    assert_eq!(TaskType::MotionPrediction.stage(), 2);
    assert_eq!(TaskType::HandMovement.stage(), 1);
}

#[test]
fn qa_errors() {
    let (array, meta) = qa().to_arrow();
    assert_dtype(
        QaBatch::from_arrow(
            replace_column(
                &array,
                "distance_m",
                Arc::new(Float64Array::from(vec![0.0; 3])),
            )
            .as_ref(),
            &meta,
        ),
        "distance_m",
    );
    assert_dtype(
        QaBatch::from_arrow(drop_column(&array, "answer").as_ref(), &meta),
        "answer",
    );
    assert_shape(
        QaBatch::from_arrow(
            replace_column(&array, "direction", f32_lists(3, 2)).as_ref(),
            &meta,
        ),
        "direction",
    );
    assert_missing(
        QaBatch::from_arrow(array.as_ref(), &without(&meta, keys::TIMESTAMP_NS)),
        "timestamp_ns",
    );
    assert_invalid(
        QaBatch::from_arrow(
            replace_column(
                &array,
                "task",
                Arc::new(StringArray::from(vec![
                    "spatial_relation",
                    "chat",
                    "motion_generation",
                ])),
            )
            .as_ref(),
            &meta,
        ),
        "task",
    );
    // A motion that is not whole waypoints: 4 tokens in the third row.
    use arrow::datatypes::UInt32Type;
    let motion = arrow::array::ListArray::from_iter_primitive::<UInt32Type, _, _>(vec![
        None,
        None,
        Some(vec![Some(1u32), Some(2), Some(3), Some(4)]),
    ]);
    assert_shape(
        QaBatch::from_arrow(
            replace_column(&array, "motion_tokens", Arc::new(motion)).as_ref(),
            &meta,
        ),
        "motion_tokens",
    );
}

// ---------------------------------------------------------------------------------------------
// Robot

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("j{i}")).collect()
}

#[test]
fn robot_state_round_trip_and_errors() {
    let s = RobotState::new(header(), names(3), vec![0.1f32, 0.2, 0.3]).unwrap();
    let (array, meta) = round_trip(&s);
    assert_eq!(s.as_slice(), &[0.1, 0.2, 0.3]);
    assert_dtype(
        RobotState::from_arrow(&Float64Array::from(vec![0.0; 3]), &meta),
        "values",
    );
    assert_shape(
        RobotState::from_arrow(&Float32Array::from(vec![0.0; 4]), &meta),
        "values",
    );
    assert_missing(
        RobotState::from_arrow(array.as_ref(), &without(&meta, keys::NAMES)),
        "names",
    );
    assert_bad_meta(
        RobotState::from_arrow(
            array.as_ref(),
            &with(&meta, keys::NAMES, MetaValue::ListString(names(2))),
        ),
        "names",
    );
}

#[test]
fn action_chunk_round_trip_and_errors() {
    let values: Vec<f32> = (0..16 * 7).map(|i| i as f32).collect();
    let a = ActionChunk::new(header(), 16, names(7), values).unwrap();
    let (array, meta) = round_trip(&a);
    assert_eq!(a.step(2).unwrap()[3], (2 * 7 + 3) as f32);
    assert_eq!(a.step(16), None);
    assert_eq!(a.steps().count(), 16);
    assert_dtype(
        ActionChunk::from_arrow(&UInt8Array::from(vec![0u8; 112]), &meta),
        "values",
    );
    assert_shape(
        ActionChunk::from_arrow(&Float32Array::from(vec![0.0; 111]), &meta),
        "values",
    );
    assert_missing(
        ActionChunk::from_arrow(array.as_ref(), &without(&meta, keys::AXES)),
        "axes",
    );
    assert_bad_meta(
        ActionChunk::from_arrow(
            array.as_ref(),
            &with(&meta, keys::SHAPE, MetaValue::ListInt(vec![16, 8])),
        ),
        "names",
    );
    assert_shape(
        ActionChunk::new(header(), 2, names(3), vec![0.0f32; 5]),
        "values",
    );
}

// ---------------------------------------------------------------------------------------------
// Control

#[test]
fn control_round_trips() {
    let clip_end = ClipEnd {
        header: StreamHeader {
            seq: 2,
            clip_id: "c".into(),
            frame_idx: 30,
            timestamp_ns: 1_000_000_000,
        },
        frames: 30,
        complete: true,
        last_seq: Some(89),
    };
    let empty_clip = ClipEnd {
        frames: 0,
        last_seq: None,
        complete: false,
        ..clip_end.clone()
    };
    let stream_end = StreamEnd {
        header: StreamHeader {
            seq: 3,
            ..StreamHeader::default()
        },
        clips: 3,
        frames: 90,
        bad_sources: 1,
    };
    let request = Request {
        seq: 11,
        credits: 4,
        skip: 0,
    };
    let resumed = Request {
        seq: 0,
        credits: 4,
        skip: 120,
    };
    let ack = Ack {
        seq: 5,
        received: 40,
    };
    round_trip(&clip_end);
    round_trip(&empty_clip);
    round_trip(&stream_end);
    round_trip(&request);
    round_trip(&resumed);
    // A request without `skip` (the key is optional) decodes as skip 0.
    assert!(!request.to_arrow().1.contains_key("skip"));
    round_trip(&ack);
    for c in [
        Control::ClipEnd(clip_end),
        Control::StreamEnd(stream_end),
        Control::Request(request),
        Control::Ack(ack),
    ] {
        let (array, meta) = c.to_arrow();
        assert!(Control::is_control(&meta));
        assert_eq!(Control::from_arrow(array.as_ref(), &meta).unwrap(), c);
        assert_eq!(
            meta.get(keys::SEQ),
            Some(&MetaValue::Integer(c.seq() as i64))
        );
    }
    let (_, image_meta) = image().to_arrow();
    assert!(!Control::is_control(&image_meta));
}

#[test]
fn control_errors() {
    let request = Request {
        seq: 1,
        credits: 2,
        skip: 0,
    };
    let (array, meta) = request.to_arrow();
    // A data message is never a control message.
    assert_shape(
        Request::from_arrow(&UInt8Array::from(vec![1u8, 2]), &meta),
        "array",
    );
    // Wrong dtype is tolerated only when empty: control data lives in the metadata.
    assert_eq!(
        Request::from_arrow(&Float32Array::from(Vec::<f32>::new()), &meta).unwrap(),
        request
    );
    assert_missing(
        Request::from_arrow(array.as_ref(), &without(&meta, "credits")),
        "credits",
    );
    assert_bad_meta(
        Request::from_arrow(
            array.as_ref(),
            &with(&meta, "credits", MetaValue::Integer(0)),
        ),
        "credits",
    );
    assert_bad_meta(
        Request::from_arrow(
            array.as_ref(),
            &with(&meta, keys::KIND, MetaValue::String("ack".into())),
        ),
        "kind",
    );
    assert_missing(
        Request::from_arrow(array.as_ref(), &without(&meta, keys::KIND)),
        "kind",
    );

    let clip_end = ClipEnd {
        header: header(),
        frames: 0,
        complete: true,
        last_seq: None,
    };
    let (array, meta) = clip_end.to_arrow();
    assert_bad_meta(
        ClipEnd::from_arrow(
            array.as_ref(),
            &with(&meta, "last_seq", MetaValue::Integer(3)),
        ),
        "last_seq",
    );
    assert_missing(
        ClipEnd::from_arrow(array.as_ref(), &without(&meta, "complete")),
        "complete",
    );
    assert_missing(
        ClipEnd::from_arrow(array.as_ref(), &without(&meta, keys::CLIP_ID)),
        "clip_id",
    );
    assert_bad_meta(
        Control::from_arrow(
            array.as_ref(),
            &with(&meta, keys::KIND, MetaValue::String("image".into())),
        ),
        "kind",
    );
    let (sarray, smeta) = StreamEnd {
        header: header(),
        clips: 1,
        frames: 2,
        bad_sources: 0,
    }
    .to_arrow();
    assert_missing(
        StreamEnd::from_arrow(sarray.as_ref(), &without(&smeta, "bad_sources")),
        "bad_sources",
    );
    assert_shape(
        StreamEnd::from_arrow(&UInt8Array::from(vec![0u8]), &smeta),
        "array",
    );
    assert_missing(
        Ack::from_arrow(
            sarray.as_ref(),
            &without(
                &Ack {
                    seq: 0,
                    received: 0,
                }
                .to_arrow()
                .1,
                "received",
            ),
        ),
        "received",
    );
}

#[test]
fn control_wire_matches_node_kit_interim_format() {
    // vipa-node-kit's interim control messages use these kinds and keys; a message it sends
    // must decode here unchanged.
    let mut meta = Metadata::new();
    header().write(&mut meta);
    meta.insert("kind".into(), MetaValue::String("clip_end".into()));
    meta.insert("frames".into(), MetaValue::Integer(12));
    meta.insert("complete".into(), MetaValue::Bool(false));
    let empty = UInt8Array::from(Vec::<u8>::new());
    let c = ClipEnd::from_arrow(&empty, &meta).unwrap();
    assert_eq!((c.frames, c.complete, c.last_seq), (12, false, None));
}

// ---------------------------------------------------------------------------------------------
// Robustness: every decoder against every message and against damaged metadata.

type Decode = fn(&dyn Array, &Metadata) -> Result<(), MsgError>;

fn dec<P: Payload>(a: &dyn Array, m: &Metadata) -> Result<(), MsgError> {
    P::from_arrow(a, m).map(|_| ())
}

fn decoders() -> Vec<(&'static str, Decode)> {
    vec![
        ("image", dec::<ImageFrame>),
        ("tensor", dec::<TensorMsg>),
        ("depth", dec::<DepthMap>),
        ("point_map", dec::<PointMap>),
        ("camera_intrinsics", dec::<CameraIntrinsicsMsg>),
        ("camera_pose", dec::<CameraPoseMsg>),
        ("hands", dec::<HandsMsg>),
        ("detections", dec::<DetectionsMsg>),
        ("motion_tokens", dec::<MotionTokens>),
        ("qa", dec::<QaBatch>),
        ("robot_state", dec::<RobotState>),
        ("action_chunk", dec::<ActionChunk>),
        ("clip_end", dec::<ClipEnd>),
        ("stream_end", dec::<StreamEnd>),
        ("request", dec::<Request>),
        ("ack", dec::<Ack>),
    ]
}

/// One encoded message of every payload, keyed by kind.
fn samples() -> Vec<(&'static str, ArrayRef, Metadata)> {
    let k = CameraIntrinsics::new(500.0, 400.0, 319.5, 239.5, 640, 480).unwrap();
    let msgs: Vec<(&'static str, (ArrayRef, Metadata))> = vec![
        ("image", image().to_arrow()),
        ("tensor", tensor().to_arrow()),
        ("depth", depth().to_arrow()),
        ("point_map", point_map().to_arrow()),
        (
            "camera_intrinsics",
            CameraIntrinsicsMsg {
                header: header(),
                intrinsics: k,
            }
            .to_arrow(),
        ),
        (
            "camera_pose",
            CameraPoseMsg {
                header: header(),
                world_from_camera: RigidTransform::IDENTITY,
            }
            .to_arrow(),
        ),
        ("hands", hands().to_arrow()),
        ("detections", detections().to_arrow()),
        ("motion_tokens", motion().to_arrow()),
        ("qa", qa().to_arrow()),
        (
            "robot_state",
            RobotState::new(header(), names(2), vec![1.0f32, 2.0])
                .unwrap()
                .to_arrow(),
        ),
        (
            "action_chunk",
            ActionChunk::new(header(), 2, names(2), vec![0.0f32; 4])
                .unwrap()
                .to_arrow(),
        ),
        (
            "clip_end",
            ClipEnd {
                header: header(),
                frames: 3,
                complete: true,
                last_seq: Some(9),
            }
            .to_arrow(),
        ),
        (
            "stream_end",
            StreamEnd {
                header: header(),
                clips: 1,
                frames: 3,
                bad_sources: 0,
            }
            .to_arrow(),
        ),
        (
            "request",
            Request {
                seq: 0,
                credits: 1,
                skip: 0,
            }
            .to_arrow(),
        ),
        (
            "ack",
            Ack {
                seq: 0,
                received: 1,
            }
            .to_arrow(),
        ),
    ];
    msgs.into_iter().map(|(k, (a, m))| (k, a, m)).collect()
}

#[test]
fn each_decoder_accepts_only_its_own_kind() {
    // Tensor-shaped payloads are deliberately readable as generic tensors too.
    let tensor_views = [
        "depth",
        "point_map",
        "motion_tokens",
        "robot_state",
        "action_chunk",
    ];
    for (kind, array, meta) in samples() {
        for (decoder, decode) in decoders() {
            let ok = decode(array.as_ref(), &meta).is_ok();
            let expected = decoder == kind || (decoder == "tensor" && tensor_views.contains(&kind));
            assert_eq!(ok, expected, "{kind} message decoded as {decoder}");
        }
        let is_control = ["clip_end", "stream_end", "request", "ack"].contains(&kind);
        assert_eq!(Control::is_control(&meta), is_control, "{kind}");
        assert_eq!(
            Control::from_arrow(array.as_ref(), &meta).is_ok(),
            is_control,
            "{kind}"
        );
    }
}

#[test]
fn damaged_metadata_gives_errors_not_panics() {
    // Keys a decoder may ignore: everything else must be required.
    let optional = |kind: &str, key: &str| {
        matches!(key, "schema_version" | "primitive")
            || (key == "kind" && !["clip_end", "stream_end", "request", "ack"].contains(&kind))
            || (kind == "clip_end" && key == "last_seq")
    };
    let replacements = [
        MetaValue::Bool(true),
        MetaValue::Integer(-1),
        MetaValue::Integer(i64::MAX),
        MetaValue::Float(f64::NAN),
        MetaValue::String("?".into()),
        MetaValue::ListInt(vec![i64::MAX, 2]),
        MetaValue::ListFloat(vec![]),
        MetaValue::ListString(vec!["x".into()]),
    ];
    let decoders = decoders();
    for (kind, array, meta) in samples() {
        let decode = decoders.iter().find(|(k, _)| *k == kind).unwrap().1;
        for key in meta.keys() {
            let removed = decode(array.as_ref(), &without(&meta, key));
            assert_eq!(
                removed.is_ok(),
                optional(kind, key),
                "{kind} without `{key}`: {removed:?}"
            );
            for value in &replacements {
                // Must not panic; a value of another type is accepted only where the decoder
                // ignores the key, or where an integer stands in for a float.
                let r = decode(array.as_ref(), &with(&meta, key, value.clone()));
                let same_type = std::mem::discriminant(&meta[key]) == std::mem::discriminant(value)
                    || matches!(
                        (&meta[key], value),
                        (MetaValue::Float(_), MetaValue::Integer(_))
                    );
                if r.is_ok() && !optional(kind, key) {
                    assert!(same_type, "{kind}: `{key}` = {value:?} accepted");
                }
            }
        }
    }
}

#[test]
fn truncated_or_empty_arrays_give_errors_not_panics() {
    let empties: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(Vec::<u8>::new())),
        Arc::new(Float32Array::from(Vec::<f32>::new())),
        Arc::new(arrow::array::NullArray::new(3)),
        arrow::array::new_empty_array(&DataType::Struct(Fields::empty())),
    ];
    for (_, array, meta) in samples() {
        for (_, decode) in decoders() {
            // Slices keep the type but lose values (or rows): any outcome but a panic.
            let _ = decode(array.slice(0, array.len() / 2).as_ref(), &meta);
            let _ = decode(
                array
                    .slice(array.len() / 2, array.len() - array.len() / 2)
                    .as_ref(),
                &meta,
            );
            for e in &empties {
                let _ = decode(e.as_ref(), &meta);
            }
        }
    }
}

#[test]
fn bulk_payloads_decode_without_copying() {
    let d = depth();
    let (array, meta) = d.to_arrow();
    let back = DepthMap::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(back.values().as_ptr(), d.values().as_ptr());
    let m = motion();
    let (array, meta) = m.to_arrow();
    let back = MotionTokens::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(back.tokens.values().as_ptr(), m.tokens.values().as_ptr());
    let a = ActionChunk::new(header(), 2, names(2), vec![0.5f32; 4]).unwrap();
    let (array, meta) = a.to_arrow();
    let back = ActionChunk::from_arrow(array.as_ref(), &meta).unwrap();
    assert_eq!(back.values.values().as_ptr(), a.values.values().as_ptr());
}

#[test]
fn frame_error_round_trip_and_errors() {
    let f = FrameError {
        header: header(),
        node: "lift-depth".into(),
        error: "no sidecar clip_0003.truth.parquet".into(),
    };
    let (array, meta) = round_trip(&f);
    assert_eq!(kind_of(&meta), Some("frame_error"));
    assert_missing(
        FrameError::from_arrow(array.as_ref(), &without(&meta, FrameError::KEY_ERROR)),
        FrameError::KEY_ERROR,
    );
    assert_missing(
        FrameError::from_arrow(array.as_ref(), &without(&meta, FrameError::KEY_NODE)),
        FrameError::KEY_NODE,
    );
    // Another kind is not a frame error.
    let ack = Ack {
        seq: 0,
        received: 1,
    };
    let (a, m) = ack.to_arrow();
    assert!(FrameError::from_arrow(a.as_ref(), &m).is_err());
}
