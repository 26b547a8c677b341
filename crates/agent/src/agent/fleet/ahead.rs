//! Claims made ahead of their slots.
//!
//! A `run_on` task's slot is claimed in the database before it runs. Claimed at the slot, the
//! claim delays the run by a round trip, and every node of the fleet sends its claims at the
//! same instant (the slots are whole seconds), so the server answers all of them at once and
//! the slowest answer waits for all the others. So when a slot of a `run_on` task runs, the
//! node asks for the task's *next* slot to be claimed [`CLAIM_AHEAD`] before it, less a spread
//! of its own (up to [`AHEAD_SPREAD`](super::rendezvous::AHEAD_SPREAD), from a hash of the node's name): the nodes' claims
//! reach the server one after another, and at the slot the node that holds it starts at once.
//!
//! At the claim's time the node claims only if it is then the slot's preferred node (the
//! rendezvous order of the nodes it then knows alive); the backups wait for the slot and
//! their grace, as without claiming ahead. A claim made ahead that is no longer wanted (the
//! task was removed, changed or paused, or the agent stops) is given back, so that the
//! backups can take the slot.
//!
//! What claiming ahead costs: a node that dies in the half second between its claim and the
//! slot leaves the slot unrun (the dead man's switch records it missed, naming the node),
//! where without claiming ahead a backup would have run it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::{
    claims::ClaimError,
    rendezvous::{rank_among, spread},
    Member,
};
use crate::{config::Task, store::Seat};

/// How long before its slot a claim is made ahead (less the node's spread).
pub const CLAIM_AHEAD: Duration = Duration::from_millis(500);

/// A slot's answer: `None` while the claim is on its way.
type Answer = watch::Receiver<Option<Result<bool, ClaimError>>>;

/// One slot to claim ahead.
#[derive(Debug)]
struct Request {
    task: Arc<Task>,
    seats: u32,
    slot_ts: i64,
    /// The task's epoch when asked: a task given back since then is not claimed.
    epoch: u64,
}

/// The claims made ahead of a node (in its [`Member`]).
#[derive(Debug, Default)]
pub struct Ahead {
    /// Requests, with the wall-clock millisecond to claim at.
    sender: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(i64, Request)>>,
    state: Mutex<State>,
    /// Tells the runs waiting for slots being given back that it is done.
    released: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    /// (task, slot) → the seat asked for and its answer, until the slot's run takes it.
    slots: HashMap<(String, i64), (u32, Answer)>,
    /// Bumped when a task's claims are given back: requests from before are dropped.
    epochs: HashMap<String, u64>,
    /// The agent stops: nothing more is claimed ahead.
    closed: bool,
    /// Slots whose claims are being given back: a run of one waits until that is done, so
    /// that it never finds a seat this node holds and is giving back (and runs it while
    /// another node takes it).
    releasing: std::collections::HashSet<(String, i64)>,
}

impl Ahead {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer to a claim made ahead for a task's slot, if one was made (waiting for it if
    /// it is on its way): true when this node holds a seat of the slot. Taken: asked twice,
    /// the second gets `None`.
    pub async fn take(&self, task: &str, slot_ts: i64) -> Option<Result<bool, ClaimError>> {
        let key = (task.to_owned(), slot_ts);
        let mut answer = loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.state();
                if !state.releasing.contains(&key) {
                    break state.slots.remove(&key)?.1;
                }
            }
            released.await;
        };
        let answer = answer.wait_for(Option::is_some).await.ok()?.clone();
        answer
    }

    /// Gives back claims this node holds (best effort: a claim left stays this node's slot),
    /// while the runs of their slots wait.
    async fn release(&self, member: &Member, held: Vec<Seat>) {
        if held.is_empty() {
            return;
        }
        for s in &held {
            if let Err(e) = member.db.unclaim(&s.task, s.slot_ts, s.seat, &member.node).await {
                tracing::warn!(task = s.task, error = %e, "cannot give back a slot claimed ahead");
            }
        }
        let mut state = self.state();
        for s in held {
            state.releasing.remove(&(s.task, s.slot_ts));
        }
        drop(state);
        self.released.notify_waiters();
    }

    /// The task's claims made ahead are given back: the pending ones are not made, and the
    /// ones made are deleted from the store (another node may take those slots).
    pub async fn give_back(&self, member: &Member, task: Option<&str>) {
        let held: Vec<Seat> = {
            let mut state = self.state();
            match task {
                Some(task) => *state.epochs.entry(task.to_owned()).or_default() += 1,
                None => state.closed = true,
            }
            let gone: Vec<(String, i64)> = state
                .slots
                .keys()
                .filter(|(name, _)| task.is_none_or(|t| t == name))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|key| {
                    let (seat, answer) = state.slots.remove(&key)?;
                    // A claim still on its way is given back by the claimer when it lands.
                    let held = matches!(*answer.borrow(), Some(Ok(true)));
                    held.then(|| {
                        state.releasing.insert(key.clone());
                        Seat { task: key.0, slot_ts: key.1, seat }
                    })
                })
                .collect()
        };
        self.release(member, held).await;
    }

    /// Asks for a task's slot to be claimed ahead, if this node is its preferred node (one of
    /// the first `seats` of its rendezvous order), now and at the claim's time. Nothing when
    /// that time has passed already.
    pub fn ask(&self, member: &Arc<Member>, task: &Arc<Task>, seats: u32, next: &jiff::Zoned) {
        let slot_ts = next.timestamp().as_second();
        if rank_among(task, slot_ts, &member.candidates(), &member.node) as u32 >= seats {
            return;
        }
        // The claim's time, on the wall clock, in milliseconds: the same for every slot due
        // together, so that their claims go together.
        let ahead = CLAIM_AHEAD.saturating_sub(spread(&member.node)).as_millis() as i64;
        let at = next.timestamp().as_millisecond() - ahead;
        if at < crate::clock::now().as_millisecond() + 10 {
            return;
        }
        let epoch = {
            let state = self.state();
            if state.closed || state.slots.contains_key(&(task.name.clone(), slot_ts)) {
                return;
            }
            state.epochs.get(&task.name).copied().unwrap_or(0)
        };
        let sender = self.sender.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            member.background.spawn(claimer(Arc::downgrade(member), rx));
            tx
        });
        let request = Request { task: task.clone(), seats, slot_ts, epoch };
        let _ = sender.send((at, request));
    }
}

/// Makes the claims asked for, at their times: those due together in one statement.
async fn claimer(
    member: Weak<Member>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<(i64, Request)>,
) {
    let mut due: BTreeMap<i64, Vec<Request>> = BTreeMap::new();
    loop {
        let first = due.keys().next().map(|at| {
            let wait = (at - crate::clock::now().as_millisecond()).max(0);
            Instant::now() + Duration::from_millis(wait as u64)
        });
        tokio::select! {
            request = requests.recv() => match request {
                Some((at, request)) => due.entry(at).or_default().push(request),
                None => return,
            },
            _ = async { tokio::time::sleep_until(first.unwrap_or_else(Instant::now)).await },
                if first.is_some() => {
                // What is due now, or within a few milliseconds, goes in one statement.
                let later = due.split_off(&(crate::clock::now().as_millisecond() + 5));
                let batch: Vec<Request> =
                    std::mem::replace(&mut due, later).into_values().flatten().collect();
                let Some(member) = member.upgrade() else { return };
                claim(&member, batch).await;
            }
        }
    }
}

/// Claims the slots of `batch` this node is now preferred for, in one statement.
async fn claim(member: &Arc<Member>, batch: Vec<Request>) {
    if member.db.away() {
        return;
    }
    let nodes = member.candidates();
    let mut wanted = Vec::new();
    let mut answers = Vec::new();
    {
        let mut state = member.ahead.state();
        if state.closed {
            return;
        }
        // A slot claimed and never run here (its run skipped by policy, say) is forgotten
        // after a minute; its claim stays (the slot was this node's).
        let old = crate::clock::now().as_second() - 60;
        state.slots.retain(|(_, slot_ts), _| *slot_ts > old);
        for request in batch {
            let name = &request.task.name;
            if state.epochs.get(name).copied().unwrap_or(0) != request.epoch {
                continue;
            }
            let rank = rank_among(&request.task, request.slot_ts, &nodes, &member.node) as u32;
            if rank >= request.seats {
                continue;
            }
            let (tx, rx) = watch::channel(None);
            state.slots.insert((name.clone(), request.slot_ts), (rank, rx));
            wanted.push(Seat { task: name.clone(), slot_ts: request.slot_ts, seat: rank });
            answers.push((request.epoch, tx));
        }
    }
    if wanted.is_empty() {
        return;
    }
    let result = member.claim_now(&wanted).await;
    // Claims made for a task given back meanwhile (or for an agent that stops) go back, and
    // a run already waiting for such a claim hears that it does not hold it (it may claim
    // the slot anew), only once it is given back: never a seat both held here and free.
    let mut stale = Vec::new();
    let mut replies = Vec::new();
    {
        let mut state = member.ahead.state();
        for (wanted, (epoch, tx)) in wanted.into_iter().zip(answers) {
            let answer = match &result {
                Ok(got) => Ok(got.contains(&wanted)),
                Err(e) => Err(e.clone()),
            };
            let gone =
                state.closed || state.epochs.get(&wanted.task).copied().unwrap_or(0) != epoch;
            if gone {
                state.slots.remove(&(wanted.task.clone(), wanted.slot_ts));
                if matches!(answer, Ok(true)) {
                    state.releasing.insert((wanted.task.clone(), wanted.slot_ts));
                    stale.push(wanted);
                    replies.push((tx, Ok(false)));
                    continue;
                }
            }
            replies.push((tx, answer));
        }
    }
    member.ahead.release(member, stale).await;
    for (tx, answer) in replies {
        let _ = tx.send(Some(answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        agent::Services,
        store::{NodeRecord, Store},
    };

    fn task() -> Arc<Task> {
        let text = "[[task]]\nname = \"solo\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n";
        Arc::new(
            crate::config::parse(std::path::Path::new("t.toml"), text).unwrap().tasks.remove(0),
        )
    }

    /// A fleet of one node: always the preferred one.
    fn node(store: Store) -> Arc<Member> {
        let services = Services::new(store, "a");
        let services = services.fleet.clone().expect("a shared store");
        let now = crate::clock::now().to_string();
        services.set_nodes(&[NodeRecord {
            name: "a".into(),
            addresses: Vec::new(),
            tags: Vec::new(),
            version: "0".into(),
            api: None,
            started_at: now.clone(),
            last_seen: now,
            stopped_at: None,
        }]);
        services
    }

    /// A whole second at least `secs` seconds from now.
    fn slot_in(secs: i64) -> jiff::Zoned {
        let ts = crate::clock::now().as_second() + secs;
        jiff::Timestamp::from_second(ts).unwrap().to_zoned(jiff::tz::TimeZone::UTC)
    }

    async fn until(slot: &jiff::Zoned, before: Duration) {
        let left = crate::clock::now().duration_until(slot.timestamp());
        let left = Duration::try_from(left).unwrap_or_default().saturating_sub(before);
        tokio::time::sleep(left).await;
    }

    /// The task's claims once there are `n` of them, or as they are at `slot`.
    async fn claimed(store: &Store, n: usize, slot: &jiff::Zoned) -> Vec<crate::store::Claim> {
        loop {
            let claims = store.fleet().unwrap().claims("solo").await.unwrap();
            if claims.len() >= n || crate::clock::now() >= slot.timestamp() {
                return claims;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_slot_is_claimed_before_it_is_due_and_given_back_when_not_wanted() {
        let Some(db) = crate::testing::TestDb::create("ahead").await else { return };
        let store = Store::connect(&db.url).await.unwrap();
        let services = node(store.clone());
        let task = task();

        // Asked for a slot two seconds on: claimed before it (by CLAIM_AHEAD less the
        // node's spread), and the slot's run finds it its own without asking the database.
        let slot = slot_in(2);
        services.ahead.ask(&services, &task, 1, &slot);
        let claims = claimed(&store, 1, &slot).await;
        assert_eq!(claims.len(), 1, "{claims:?}");
        assert_eq!(
            (claims[0].slot_ts, claims[0].node.as_str()),
            (slot.timestamp().as_second(), "a")
        );
        let at: jiff::Timestamp = claims[0].claimed_at.parse().unwrap();
        assert!(at < slot.timestamp(), "claimed at {at}, before {slot}");
        let trips = services.claim_round_trips.load(std::sync::atomic::Ordering::Relaxed);
        assert!(services.claim_seat(&task, 1, &slot, None).await);
        assert_eq!(services.claim_round_trips.load(std::sync::atomic::Ordering::Relaxed), trips);
        assert_eq!(services.ahead.take("solo", slot.timestamp().as_second()).await, None, "taken");

        // Claimed ahead, then the task is removed (or changed, or paused): the seat goes back.
        let slot = slot_in(2);
        services.ahead.ask(&services, &task, 1, &slot);
        assert_eq!(claimed(&store, 2, &slot).await.len(), 2);
        services.ahead.give_back(&services, Some("solo")).await;
        assert_eq!(store.fleet().unwrap().claims("solo").await.unwrap().len(), 1);
        assert_eq!(services.ahead.take("solo", slot.timestamp().as_second()).await, None);

        // A run of a slot being given back waits until it is: it never finds the seat held
        // here while another node could take it.
        let slot = slot_in(2);
        services.ahead.ask(&services, &task, 1, &slot);
        assert_eq!(claimed(&store, 2, &slot).await.len(), 2);
        let giving = {
            let services = services.clone();
            tokio::spawn(async move { services.ahead.give_back(&services, Some("solo")).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(services.ahead.take("solo", slot.timestamp().as_second()).await, None);
        assert!(giving.is_finished(), "the run went on before the seat was given back");
        assert_eq!(store.fleet().unwrap().claims("solo").await.unwrap().len(), 1);
        giving.await.unwrap();

        // Given back before its time: never claimed.
        let slot = slot_in(2);
        services.ahead.ask(&services, &task, 1, &slot);
        services.ahead.give_back(&services, Some("solo")).await;
        until(&slot, Duration::ZERO).await;
        assert_eq!(store.fleet().unwrap().claims("solo").await.unwrap().len(), 1);

        // Too late to claim ahead (the time has passed): nothing is asked.
        let slot = slot_in(0);
        services.ahead.ask(&services, &task, 1, &slot);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.fleet().unwrap().claims("solo").await.unwrap().len(), 1);

        // The agent stops: nothing more is claimed ahead.
        let slot = slot_in(2);
        services.ahead.ask(&services, &task, 1, &slot);
        services.ahead.give_back(&services, None).await;
        services.ahead.ask(&services, &task, 1, &slot_in(3));
        until(&slot, Duration::ZERO).await;
        assert_eq!(store.fleet().unwrap().claims("solo").await.unwrap().len(), 1);
        db.drop_database().await;
    }
}
