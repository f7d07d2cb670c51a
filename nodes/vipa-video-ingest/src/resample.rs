//! Frame-rate resampling by dropping or duplicating source frames.
//!
//! Output frame `k` is at time `k / target_fps`; it shows the source frame nearest in time,
//! `round(k * source_fps / target_fps)`. Frames are decoded in order, so for each source frame
//! `i` the resampler answers how many output frames show it: 0 (dropped, when downsampling),
//! 1, or more (duplicated, when upsampling).

/// Nanoseconds per second.
const NS: f64 = 1e9;

/// Maps source frames to output frames for one clip.
#[derive(Debug, Clone)]
pub struct Resampler {
    source_fps: f64,
    /// `None`: pass every frame through at the source rate.
    target_fps: Option<f64>,
    /// Index of the next output frame.
    next_out: u64,
}

impl Resampler {
    /// `source_fps` must be positive (callers fall back to a default for broken headers).
    pub fn new(source_fps: f64, target_fps: Option<f64>) -> Self {
        Self {
            source_fps,
            target_fps,
            next_out: 0,
        }
    }

    /// Output timestamps (ns since clip start) for source frame `i`; empty means drop it.
    /// Must be called for `i = 0, 1, 2, …` in order.
    pub fn outputs_for(&mut self, i: u64) -> Vec<u64> {
        let Some(target) = self.target_fps else {
            self.next_out = i + 1;
            return vec![to_ns(i as f64 / self.source_fps)];
        };
        let ratio = self.source_fps / target;
        let mut stamps = Vec::new();
        // `<=` rather than `==`: an output whose nearest source frame was never decoded (it
        // cannot happen when `i` advances by one, but a decoder may skip) is shown by the next.
        while (self.next_out as f64 * ratio).round() <= i as f64 {
            stamps.push(to_ns(self.next_out as f64 / target));
            self.next_out += 1;
        }
        stamps
    }
}

fn to_ns(seconds: f64) -> u64 {
    // Saturating float→int cast; times are small and non-negative.
    (seconds * NS).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(src: f64, target: Option<f64>, n: u64) -> Vec<usize> {
        let mut r = Resampler::new(src, target);
        (0..n).map(|i| r.outputs_for(i).len()).collect()
    }

    #[test]
    fn pass_through_keeps_every_frame_at_source_times() {
        let mut r = Resampler::new(25.0, None);
        assert_eq!(r.outputs_for(0), vec![0]);
        assert_eq!(r.outputs_for(1), vec![40_000_000]);
        assert_eq!(r.outputs_for(2), vec![80_000_000]);
    }

    #[test]
    fn halving_the_rate_keeps_every_other_frame() {
        assert_eq!(counts(30.0, Some(15.0), 6), vec![1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn doubling_the_rate_duplicates_frames() {
        // Output k shows source round(k / 2) (halves round up): k=0→0, k=1→1, k=2→1,
        // k=3→2, k=4→2, k=5→3: frame 0 once, frames 1 and 2 twice.
        assert_eq!(counts(10.0, Some(20.0), 3), vec![1, 2, 2]);
        let mut r = Resampler::new(10.0, Some(20.0));
        r.outputs_for(0);
        assert_eq!(r.outputs_for(1), vec![50_000_000, 100_000_000]);
    }

    #[test]
    fn output_count_matches_duration() {
        // 3 s at 30 fps resampled to 12 fps: 36 output frames (±1 for the boundary).
        let total: usize = counts(30.0, Some(12.0), 90).iter().sum();
        assert!((35..=37).contains(&total), "{total}");
        let total: usize = counts(24.0, Some(30.0), 48).iter().sum();
        assert!((59..=61).contains(&total), "{total}");
    }
}
