use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use cronfleet_scheduler::{Clock, RunContext, Scheduler, Sleep, TokioClock};
use jiff::{tz::TimeZone, SignedDuration, Timestamp, Zoned};

pub const ORIGIN: &str = "2026-05-03T00:00:00Z";

/// A `TokioClock` whose wall-clock reading can jump forward, as after a suspend.
#[derive(Clone)]
pub struct JumpClock {
    inner: TokioClock,
    jumped: Arc<AtomicI64>,
}

impl JumpClock {
    pub fn jump(&self, by: Duration) {
        self.jumped.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

impl Clock for JumpClock {
    fn now(&self) -> Timestamp {
        let jumped = SignedDuration::from_secs(self.jumped.load(Ordering::SeqCst));
        self.inner.now().checked_add(jumped).unwrap()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        // Like a real timer: it measures the wait when it starts, so a jump during the sleep
        // is only noticed on waking.
        let wait = Duration::try_from(deadline.duration_since(self.now())).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

pub fn zone(name: &str) -> TimeZone {
    jiff::tz::TimeZoneDatabase::bundled().get(name).unwrap()
}

/// A scheduler in UTC whose clock starts at `origin` and follows tokio's paused time.
pub fn scheduler_at(origin: &str, tz: &str) -> (Scheduler, JumpClock) {
    let clock = JumpClock {
        inner: TokioClock::starting_at(origin.parse().unwrap()),
        jumped: Arc::default(),
    };
    let s = Scheduler::builder().clock(clock.clone()).time_zone(zone(tz)).build();
    (s, clock)
}

pub fn scheduler() -> (Scheduler, JumpClock) {
    scheduler_at(ORIGIN, "UTC")
}

/// What runs saw: "slot attempt", in start order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// A job that logs its slot's time of day (or date and time) and returns at once.
    pub fn job(&self) -> impl Fn(RunContext) -> std::future::Ready<()> + Send + Sync + 'static {
        let log = self.clone();
        move |ctx: RunContext| {
            log.push(short(&ctx.slot));
            std::future::ready(())
        }
    }
}

/// `2026-05-03T00:00:10` style, without offset (all tests but DST ones are in UTC).
pub fn short(z: &Zoned) -> String {
    z.datetime().to_string()
}

pub async fn advance(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
