//! The reader's logic without dora: a tiny dataset from `fixture`, requests in, recorded
//! messages out.

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use vipa_dataset_reader::fixture::{plane_depth, write_dataset};
use vipa_dataset_reader::reader::keys;
use vipa_dataset_reader::{Reader, ReaderConfig, ReaderError};
use vipa_msgs::ports;
use vipa_msgs::{ImageFrame, MetaValue, PointMap, QaBatch, Request, StreamEnd, kind_of};
use vipa_node_kit::{RecordingOutputs, Sent, from_yaml_str};

fn config(root: &std::path::Path, extra: &str) -> ReaderConfig {
    let mut c: ReaderConfig = from_yaml_str(extra).unwrap();
    c.dataset = root.to_path_buf();
    c
}

fn int(s: &Sent, key: &str) -> i64 {
    match s.meta.get(key) {
        Some(MetaValue::Integer(i)) => *i,
        other => panic!("{key}: {other:?}"),
    }
}

fn request(r: &mut Reader, out: &mut RecordingOutputs, seq: u64, credits: u32) {
    r.on_request(
        Request {
            seq,
            credits,
            skip: 0,
        },
        out,
    )
    .unwrap();
}

fn data<'a>(out: &'a RecordingOutputs, output: &'a str) -> Vec<&'a Sent> {
    out.on(output)
        .filter(|s| kind_of(&s.meta) != Some("stream_end"))
        .collect()
}

#[test]
fn sends_exactly_the_requested_samples_with_their_frames() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 4), ("clip_b", 3)], 8, 6).unwrap();
    // 3 + 2 = 5 samples of 2 frames each; keep the last 2.
    let mut r = Reader::open(&config(dir.path(), "{max_frames: 2, seed: 3}")).unwrap();
    assert_eq!(r.samples_per_epoch(), 5);
    let mut out = RecordingOutputs::new();
    assert!(out.sent.is_empty(), "nothing is sent unrequested");
    request(&mut r, &mut out, 0, 2);
    assert_eq!(data(&out, ports::SAMPLE).len(), 2);
    // A resent request (same seq) adds no credits.
    request(&mut r, &mut out, 0, 2);
    assert_eq!(data(&out, ports::SAMPLE).len(), 2);
    assert_eq!(data(&out, ports::IMAGE).len(), 4);
    assert_eq!(data(&out, ports::POINTMAP).len(), 4);
    request(&mut r, &mut out, 1, 1);
    let samples = data(&out, ports::SAMPLE);
    assert_eq!(samples.len(), 3);
    assert!(!r.is_ended());

    for (i, s) in samples.iter().enumerate() {
        let b: QaBatch = s.decode().unwrap();
        assert_eq!(b.samples.len(), 1);
        assert_eq!(b.header.seq, i as u64);
        assert_eq!(int(s, keys::SAMPLE_SEQ), i as i64);
        assert_eq!(int(s, keys::N_FRAMES), 2);
        assert_eq!(int(s, keys::EPOCH), 0);
        assert_eq!(
            s.meta.get(keys::SPLIT),
            Some(&MetaValue::String("train".into()))
        );
        let q = &b.samples[0];
        assert_eq!(q.frame_indices.len(), 2);
        assert_eq!(b.header.frame_idx, q.frame_indices[1]);
        assert_eq!(q.question_id, format!("{}#{i}", q.clip_id));
        // The sample's frames, in slot order, on both frame outputs.
        for (out_id, slot_of) in [(ports::IMAGE, 0usize), (ports::POINTMAP, 1)] {
            let frames: Vec<&Sent> = data(&out, out_id)
                .into_iter()
                .filter(|m| int(m, keys::SAMPLE_SEQ) == i as i64)
                .collect();
            assert_eq!(frames.len(), 2, "{out_id}");
            for (slot, m) in frames.iter().enumerate() {
                assert_eq!(int(m, keys::FRAME_SLOT), slot as i64);
                assert_eq!(int(m, keys::N_FRAMES), 2);
                let frame_idx = q.frame_indices[slot] as u32;
                if slot_of == 0 {
                    let img: ImageFrame = m.decode().unwrap();
                    assert_eq!(img.header.clip_id, q.clip_id);
                    assert_eq!(img.header.frame_idx, u64::from(frame_idx));
                    assert_eq!((img.width, img.height), (8, 6));
                    assert_eq!(img.bytes()[0], frame_idx as u8, "pixel 0 encodes the frame");
                } else {
                    let pm: PointMap = m.decode().unwrap();
                    assert_eq!(pm.header.frame_idx, u64::from(frame_idx));
                    assert!(pm.at(0, 0).is_none(), "pixel 0 has no depth");
                    let p = pm.at(3, 4).unwrap();
                    assert!((p[2] - plane_depth(frame_idx)).abs() < 1e-3, "{p:?}");
                }
            }
        }
    }
    // Per-output seq has no gaps.
    for out_id in [ports::IMAGE, ports::POINTMAP, ports::SAMPLE] {
        let seqs: Vec<i64> = out.on(out_id).map(|m| int(m, "seq")).collect();
        assert_eq!(seqs, (0..seqs.len() as i64).collect::<Vec<_>>(), "{out_id}");
    }
}

/// A resumed trainer's first request passes over the samples it already trained on: the
/// rest arrive exactly as in an uninterrupted stream (same samples, same `sample_seq`, same
/// frames), nothing before them is sent, and every output's own `seq` still starts at 0.
#[test]
fn skip_passes_over_samples_and_the_rest_match_an_uninterrupted_stream() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 5), ("clip_b", 5)], 4, 4).unwrap();
    let cfg = config(dir.path(), "{epochs: 2, seed: 1, max_frames: 2}");
    let mut full = Reader::open(&cfg).unwrap();
    let mut all = RecordingOutputs::new();
    request(&mut full, &mut all, 0, 40);
    let mut resumed = Reader::open(&cfg).unwrap();
    let mut out = RecordingOutputs::new();
    // 11 = past the first epoch's 8 samples: the second epoch's shuffle must line up too.
    resumed
        .on_request(
            Request {
                seq: 0,
                credits: 3,
                skip: 11,
            },
            &mut out,
        )
        .unwrap();
    request(&mut resumed, &mut out, 1, 40);
    assert!(resumed.is_ended());
    assert_eq!(resumed.totals().passed_over, 11);
    let key = |s: &Sent| {
        let b: QaBatch = s.decode().unwrap();
        (
            int(s, keys::SAMPLE_SEQ),
            int(s, keys::EPOCH),
            b.samples[0].question_id.clone(),
            b.samples[0].frame_indices.clone(),
        )
    };
    let want: Vec<_> = data(&all, ports::SAMPLE)
        .into_iter()
        .skip(11)
        .map(key)
        .collect();
    let got: Vec<_> = data(&out, ports::SAMPLE).into_iter().map(key).collect();
    assert_eq!(got.len(), 16 - 11);
    assert_eq!(got, want);
    // Frames: only those of the samples sent, with the same pixels.
    let frames = |o: &RecordingOutputs, from: i64| -> Vec<(i64, Vec<u8>)> {
        data(o, ports::IMAGE)
            .into_iter()
            .filter(|m| int(m, keys::SAMPLE_SEQ) >= from)
            .map(|m| {
                let img: ImageFrame = m.decode().unwrap();
                (int(m, keys::SAMPLE_SEQ), img.bytes().to_vec())
            })
            .collect()
    };
    assert_eq!(frames(&out, 0), frames(&all, 11));
    for out_id in [ports::IMAGE, ports::POINTMAP, ports::SAMPLE] {
        let seqs: Vec<i64> = out.on(out_id).map(|m| int(m, "seq")).collect();
        assert_eq!(seqs, (0..seqs.len() as i64).collect::<Vec<_>>(), "{out_id}");
    }
}

#[test]
fn ends_every_output_after_the_last_epoch_and_reshuffles_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 5), ("clip_b", 5)], 4, 4).unwrap();
    let mut r = Reader::open(&config(dir.path(), "{epochs: 2, seed: 1}")).unwrap();
    let n = r.samples_per_epoch();
    assert_eq!(n, 8);
    let mut out = RecordingOutputs::new();
    // Ask for more than there is: 2 epochs = 16 samples, then the stream ends.
    request(&mut r, &mut out, 0, 40);
    assert!(r.is_ended());
    let samples: Vec<QaBatch> = data(&out, ports::SAMPLE)
        .iter()
        .map(|s| s.decode().unwrap())
        .collect();
    assert_eq!(samples.len(), 2 * n);
    let key = |b: &QaBatch| {
        let q = &b.samples[0];
        (q.clip_id.clone(), q.frame_indices.clone())
    };
    let mut e0: Vec<_> = samples[..n].iter().map(key).collect();
    let mut e1: Vec<_> = samples[n..].iter().map(key).collect();
    assert_ne!(e0, e1, "a new epoch is a new order");
    e0.sort();
    e1.sort();
    assert_eq!(e0, e1, "each epoch holds every sample once");
    assert_eq!(e0.windows(2).filter(|w| w[0] == w[1]).count(), 0);
    // One StreamEnd per output, last, with the count of messages before it.
    for (out_id, count) in [
        (ports::SAMPLE, 2 * n),
        (ports::IMAGE, 2 * n),
        (ports::POINTMAP, 2 * n),
    ] {
        let all: Vec<&Sent> = out.on(out_id).collect();
        let last = all.last().unwrap();
        let end: StreamEnd = last.decode().unwrap();
        assert_eq!(end.header.seq, count as u64);
        assert_eq!(end.frames, count as u64);
        assert_eq!(end.bad_sources, 0);
        assert_eq!(all.len(), count + 1);
    }
    assert_eq!(r.totals().credits_unused, 40 - 16);
}

#[test]
fn same_seed_same_order_and_max_samples_stops_early() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 6)], 4, 4).unwrap();
    let run = |seed: u64| {
        let mut r = Reader::open(&config(
            dir.path(),
            &format!("{{seed: {seed}, epochs: 5, max_samples: 7}}"),
        ))
        .unwrap();
        let mut out = RecordingOutputs::new();
        for i in 0..7 {
            assert!(!r.is_ended());
            request(&mut r, &mut out, i, 1);
        }
        // The 7th sample reached max_samples: the end follows it without another request.
        assert!(r.is_ended());
        data(&out, ports::SAMPLE)
            .iter()
            .map(|s| {
                s.decode::<QaBatch>().unwrap().samples[0]
                    .frame_indices
                    .clone()
            })
            .collect::<Vec<_>>()
    };
    let a = run(11);
    assert_eq!(a.len(), 7);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}

#[test]
fn task_filter_keeps_only_those_tasks() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 7)], 4, 4).unwrap();
    let mut r = Reader::open(&config(dir.path(), "{tasks: [visual]}")).unwrap();
    assert_eq!(
        r.samples_per_epoch(),
        4,
        "6 samples, 2 of them motion_generation"
    );
    let mut out = RecordingOutputs::new();
    request(&mut r, &mut out, 0, 10);
    for s in data(&out, ports::SAMPLE) {
        let b: QaBatch = s.decode().unwrap();
        assert_ne!(b.samples[0].task.as_str(), "motion_generation");
    }
    let err = Reader::open(&config(dir.path(), "{tasks: [camera_movement]}")).unwrap_err();
    assert!(matches!(err, ReaderError::Empty { .. }), "{err}");
}

#[test]
fn missing_frames_skip_the_sample_loudly_without_using_a_credit() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 3), ("clip_b", 3)], 4, 4).unwrap();
    std::fs::remove_file(dir.path().join("frames/clip_b.parquet")).unwrap();
    let mut r = Reader::open(&config(dir.path(), "")).unwrap();
    let mut out = RecordingOutputs::new();
    request(&mut r, &mut out, 0, 1);
    request(&mut r, &mut out, 1, 1);
    // Only clip_a's 2 samples exist; clip_b's 2 were skipped; the second request may or may
    // not be satisfied depending on the order, but everything ends after 4 attempts.
    request(&mut r, &mut out, 2, 5);
    assert!(r.is_ended());
    assert_eq!(r.skipped(), 2);
    let clips: Vec<String> = data(&out, ports::SAMPLE)
        .iter()
        .map(|s| s.decode::<QaBatch>().unwrap().header.clip_id)
        .collect();
    assert_eq!(clips, vec!["clip_a".to_owned(); 2]);
    let end: StreamEnd = out.on(ports::SAMPLE).last().unwrap().decode().unwrap();
    assert_eq!(end.bad_sources, 2);
}

#[test]
fn lost_request_is_an_error_and_bad_dataset_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[("clip_a", 3)], 4, 4).unwrap();
    let mut r = Reader::open(&config(dir.path(), "")).unwrap();
    let mut out = RecordingOutputs::new();
    let err = r
        .on_request(
            Request {
                seq: 1,
                credits: 1,
                skip: 0,
            },
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, ReaderError::RequestGap { missing: 1, .. }),
        "{err}"
    );
    assert!(out.sent.is_empty());

    let missing = dir.path().join("nope");
    let err = Reader::open(&config(&missing, "")).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}
