//! The asking side of the pull protocol ([`vipa_msgs::Request`]): a consumer that must see every
//! sample (the trainer, `feature-check`) asks its source for credits instead of letting it
//! push, so dora's drop-oldest queues never hold more than was asked for and never drop one.
//!
//! [`CreditRequester`] keeps at most `window` samples asked for and not yet arrived, asks again
//! once at least `refill` credits are free, stops at an optional budget, and remembers its last
//! request so that it can be resent when nothing arrives for a while (the source ignores a
//! repeated `seq`). The first request carries `skip`: a resumed run's source passes over the
//! samples the checkpoint already saw.

use vipa_msgs::Request;

/// The credit window of a pull consumer.
#[derive(Debug, Clone)]
pub struct CreditRequester {
    window: u32,
    refill: u32,
    budget: Option<u64>,
    skip: u64,
    requested: u64,
    last: Option<Request>,
}

impl CreditRequester {
    /// At most `window` (≥ 1) samples in flight; asks again as soon as one credit is free.
    pub fn new(window: u32) -> Self {
        Self {
            window: window.max(1),
            refill: 1,
            budget: None,
            skip: 0,
            requested: 0,
            last: None,
        }
    }

    /// Asks again only when at least `refill` credits are free (`window`: a whole new window
    /// once everything asked for has arrived).
    pub fn refill_at(mut self, refill: u32) -> Self {
        self.refill = refill.clamp(1, self.window);
        self
    }

    /// Asks for at most `budget` samples in all (`None`: until the source ends).
    pub fn with_budget(mut self, budget: Option<u64>) -> Self {
        self.budget = budget;
        self
    }

    /// The first request asks the source to pass over `skip` samples.
    pub fn skipping(mut self, skip: u64) -> Self {
        self.skip = skip;
        self
    }

    /// The request to send now, given how many of the asked-for samples have `arrived`; `None`
    /// while fewer than `refill` credits are free or the budget is spent.
    pub fn next(&mut self, arrived: u64) -> Option<Request> {
        let in_flight = self.requested.saturating_sub(arrived);
        let free = u64::from(self.window).saturating_sub(in_flight);
        let left = self
            .budget
            .map_or(u64::MAX, |b| b.saturating_sub(self.requested));
        let want = free.min(left);
        // Below the refill mark only when the budget, not the window, is what limits.
        if want == 0 || (free < u64::from(self.refill) && left > free) {
            return None;
        }
        let r = match &self.last {
            None => Request {
                seq: 0,
                credits: u32::try_from(want).unwrap_or(u32::MAX),
                skip: self.skip,
            },
            Some(prev) => Request {
                seq: prev.seq + 1,
                credits: u32::try_from(want).unwrap_or(u32::MAX),
                skip: 0,
            },
        };
        self.requested += u64::from(r.credits);
        self.last = Some(r);
        Some(r)
    }

    /// The last request sent (to resend, unchanged, when nothing arrives).
    pub fn last(&self) -> Option<Request> {
        self.last
    }

    /// Samples asked for so far.
    pub fn requested(&self) -> u64 {
        self.requested
    }

    /// Requests sent so far (not counting resends).
    pub fn requests(&self) -> u64 {
        self.last.map_or(0, |r| r.seq + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(r: &mut CreditRequester, arrived: u64) -> Option<(u64, u32, u64)> {
        r.next(arrived).map(|q| (q.seq, q.credits, q.skip))
    }

    #[test]
    fn a_sliding_window_tops_up_one_credit_at_a_time() {
        let mut r = CreditRequester::new(4).skipping(10);
        assert_eq!(ask(&mut r, 0), Some((0, 4, 10)));
        assert_eq!(ask(&mut r, 0), None, "window full");
        assert_eq!(ask(&mut r, 1), Some((1, 1, 0)));
        assert_eq!(ask(&mut r, 3), Some((2, 2, 0)));
        assert_eq!(r.requested(), 7);
        assert_eq!(r.requests(), 3);
        assert_eq!(r.last().map(|q| q.seq), Some(2));
    }

    #[test]
    fn a_whole_window_once_everything_arrived() {
        // 2 credits a request: 5 samples need 3 requests.
        let mut r = CreditRequester::new(2).refill_at(2);
        assert_eq!(ask(&mut r, 0), Some((0, 2, 0)));
        assert_eq!(ask(&mut r, 1), None);
        assert_eq!(ask(&mut r, 2), Some((1, 2, 0)));
        assert_eq!(ask(&mut r, 4), Some((2, 2, 0)));
        assert_eq!(r.requests(), 3);
    }

    #[test]
    fn the_budget_caps_the_last_request() {
        let mut r = CreditRequester::new(4).refill_at(4).with_budget(Some(6));
        assert_eq!(ask(&mut r, 0), Some((0, 4, 0)));
        // Two credits left in the budget: asked for even though below the refill mark.
        assert_eq!(ask(&mut r, 4), Some((1, 2, 0)));
        assert_eq!(ask(&mut r, 6), None);
        assert_eq!(r.requested(), 6);
    }
}
