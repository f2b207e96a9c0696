//! The provider task for one engine, plain containers or a swarm. Lifecycle:
//!
//! 1. Connect (negotiating the API version). An engine that does not answer is retried with a
//!    backoff from 100 ms up to 1 s, forever; meanwhile the last fragment keeps serving, with a
//!    problem saying the engine is unreachable.
//! 2. Read the engine's clock, list and inspect the running containers, build and send the
//!    fragment: a fresh list always replaces what was known before (this is the resync after an
//!    engine restart).
//! 3. Follow the event stream from just before the list (events replayed twice only cause a
//!    second inspection). Each event names one container, which alone is inspected again (or
//!    dropped when it stopped). Events already waiting are taken together, so a burst costs one
//!    build and one send. After 15 s without an event the engine is pinged (`/_ping`, 5 s to
//!    answer): a stream that is silent because the engine or the way to it died without closing
//!    anything (traffic dropped, a half-open TCP connection) would otherwise freeze the routes
//!    for good. TCP keepalive on the connections (`client`) catches a vanished peer too.
//! 4. When the stream breaks (engine restart, network) or the ping fails, go back to 1 keeping
//!    the last routes and reporting the engine unreachable.
//!
//! A swarm (Traefik's swarm provider) is read whole instead: networks, services and tasks are
//! listed again when a service or task container event says something changed, every
//! `refreshSeconds` in any case (Traefik only polls), and every 200 ms while a task meant to run
//! is still starting, so a new replica is routed as soon as the swarm calls it running.
//!
//! A fragment is sent only when it differs from the last one sent. The task stops when the
//! gateway's stop signal changes or the assembler is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::client::ApiError;
use super::engine::{Engine, Event, Events};
use super::{Container, Endpoint, Settings, build, swarm};
use crate::dynamic::{Fragment, Problem};

/// First retry delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay (an engine coming back is seen within this).
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Most distinct containers waiting for inspection; beyond, the whole list is read again.
const MAX_PENDING: usize = 1024;
/// A swarm is listed again this soon while a task is starting...
const SETTLE: Duration = Duration::from_millis(200);
/// ...this many times in a row at most, then at the refresh interval.
const MAX_SETTLE_ROUNDS: u32 = 50;
/// A container engine whose event stream was silent this long is pinged (the swarm provider
/// lists at least every `refreshSeconds`, which serves the same end).
const WATCHDOG: Duration = Duration::from_secs(15);

/// One watched engine as `/api/providers/docker` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineStatus {
    /// The provider namespace (`docker`, `docker-lab`, `swarm`).
    pub provider: String,
    pub endpoint: String,
    pub swarm: bool,
    /// `connected` (followed through its events), `listed` (`watch = false`: listed once, not
    /// followed) or `unreachable` (serving the last known containers).
    pub state: &'static str,
    pub error: Option<String>,
    /// Containers (or swarm tasks) known, and the routers they make.
    pub containers: usize,
    pub routers: usize,
    /// Unix seconds of the last change of `state`.
    pub since: u64,
}

/// The engines this process watches, by namespace (one entry per provider task, with the
/// task's number: a task ending removes its own entry, not a successor's).
static ENGINES: std::sync::Mutex<BTreeMap<String, (u64, EngineStatus)>> =
    std::sync::Mutex::new(BTreeMap::new());
static TASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn engines_table() -> std::sync::MutexGuard<'static, BTreeMap<String, (u64, EngineStatus)>> {
    ENGINES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every watched engine's state, by namespace.
pub fn engines() -> Vec<EngineStatus> {
    engines_table().values().map(|(_, e)| e.clone()).collect()
}

/// What the engine is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain containers (`[providers.docker]`).
    Containers,
    /// Swarm services (`[providers.swarm]`), listed again at least every `refresh`.
    Swarm { refresh: Duration },
}

/// One engine to watch.
#[derive(Clone)]
pub struct DockerSource {
    pub endpoint: Endpoint,
    pub settings: Settings,
    /// TLS for a `tcp://` endpoint.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Follow events (Traefik's `watch`); when false, list once and stop.
    pub watch: bool,
    pub kind: Kind,
}

struct Task {
    src: DockerSource,
    tx: mpsc::Sender<(String, Fragment)>,
    containers: BTreeMap<String, Container>,
    last: Option<Fragment>,
    /// Why the engine is not being followed right now, if it is not.
    down: Option<String>,
    /// The last session got as far as a full list (the retry delay starts again from the
    /// minimum).
    listed: bool,
    /// This task's number in `ENGINES`.
    id: u64,
}

/// Why a session with the engine ended.
enum End {
    Stop,
    Lost(String),
}

/// Run the provider for one engine until `stop` changes. Its entry in the engines' table goes
/// with it.
pub async fn run(
    src: DockerSource,
    tx: mpsc::Sender<(String, Fragment)>,
    mut stop: watch::Receiver<bool>,
) {
    let namespace = src.settings.namespace.clone();
    let mut task = Task {
        src,
        tx,
        containers: BTreeMap::new(),
        last: None,
        down: None,
        listed: false,
        id: TASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    // However this task ends (returned or aborted), its entry goes with it.
    let _entry = Entry {
        namespace,
        id: task.id,
    };
    if drive(&mut task, &mut stop).await {
        // Listed once (`watch = false`): its entry stays, as `listed`, while it is configured.
        let _ = stop.changed().await;
    }
}

/// A task's entry in the engines' table, removed when dropped (unless a successor owns it).
struct Entry {
    namespace: String,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut all = engines_table();
        if (all.get(&self.namespace)).is_some_and(|(owner, _)| *owner == self.id) {
            all.remove(&self.namespace);
        }
    }
}

/// Follow the engine until stopped (retrying while it cannot be reached, `watch = false`
/// included); true when it ended because `watch = false` had it listed once.
async fn drive(task: &mut Task, stop: &mut watch::Receiver<bool>) -> bool {
    let mut backoff = BACKOFF_MIN;
    loop {
        let end = tokio::select! {
            end = task.session() => end,
            _ = stop.changed() => End::Stop,
        };
        let why = match end {
            End::Stop => return !task.src.watch && !*stop.borrow() && !task.tx.is_closed(),
            End::Lost(why) => why,
        };
        if std::mem::take(&mut task.listed) {
            backoff = BACKOFF_MIN;
        }
        if task.down.is_none() {
            tracing::warn!(endpoint = %task.src.endpoint, error = %why, "docker engine unreachable; keeping the last routes and retrying");
        }
        task.down = Some(why);
        if !task.publish().await {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return false,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

impl Task {
    /// One connection: list, then follow events until something breaks.
    async fn session(&mut self) -> End {
        let engine = match Engine::connect(&self.src.endpoint, self.src.tls.clone()).await {
            Ok(e) => e,
            Err(e) => return End::Lost(e.to_string()),
        };
        let since = match engine.now().await {
            Ok(Some(t)) => t - 1,
            Ok(None) => wall_clock() - 5,
            Err(e) => return End::Lost(e.to_string()),
        };
        if let Kind::Swarm { refresh } = self.src.kind {
            return self.swarm_session(&engine, since, refresh).await;
        }
        let mut events = None;
        if self.src.watch {
            match engine.events(since).await {
                Ok(e) => events = Some(e),
                Err(e) => return End::Lost(format!("event stream: {e}")),
            }
        }
        let all = match engine.all().await {
            Ok(all) => all,
            Err(e) => return End::Lost(e.to_string()),
        };
        tracing::info!(endpoint = %self.src.endpoint, api = %engine.api_version(), containers = all.len(), "docker engine listed");
        self.containers = all;
        self.down = None;
        self.listed = true;
        if !self.publish().await {
            return End::Stop;
        }
        let Some(events) = events else {
            return End::Stop;
        };
        self.follow(&engine, events).await
    }

    /// Follow the event stream until it breaks, inspecting the containers it names. After
    /// [`WATCHDOG`] without an event the engine is pinged: an engine that no longer answers
    /// (a half-open connection, traffic dropped on the way) ends the session as a broken
    /// stream does, instead of leaving the routes frozen for ever.
    async fn follow(&mut self, engine: &Engine, mut events: Events) -> End {
        let mut watchdog = tokio::time::interval_at(Instant::now() + WATCHDOG, WATCHDOG);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                ev = events.next() => ev,
                _ = watchdog.tick() => {
                    if let Err(e) = engine.ping().await {
                        return End::Lost(format!("watchdog: no answer to /_ping ({e})"));
                    }
                    continue;
                }
            };
            let mut pending: BTreeMap<String, bool> = BTreeMap::new();
            if let Err(end) = note(&mut pending, first) {
                return end;
            }
            // Take every event already waiting: a burst is one build.
            while let Some(next) = events.next().now_or_never() {
                if let Err(end) = note(&mut pending, next) {
                    return end;
                }
                if pending.len() >= MAX_PENDING {
                    break;
                }
            }
            if let Err(e) = self.apply(engine, pending).await {
                return End::Lost(e.to_string());
            }
            if !self.publish().await {
                return End::Stop;
            }
            watchdog.reset();
        }
    }

    /// Inspect again what the events named (or list everything again after too many).
    async fn apply(
        &mut self,
        engine: &Engine,
        pending: BTreeMap<String, bool>,
    ) -> Result<(), ApiError> {
        if pending.len() >= MAX_PENDING {
            self.containers = engine.all().await?;
            return Ok(());
        }
        for (id, refresh) in pending {
            if !refresh {
                self.containers.remove(&id);
                continue;
            }
            match engine.inspect(&id).await? {
                Some(c) if c.running => {
                    self.containers.insert(id, c);
                }
                _ => {
                    self.containers.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// A swarm manager: list, then list again on relevant events, while tasks start, and
    /// every `refresh`.
    async fn swarm_session(&mut self, engine: &Engine, since: i64, refresh: Duration) -> End {
        if let Err(why) = swarm::check_manager(engine).await {
            return End::Lost(why);
        }
        let mut events: Option<Events> = None;
        if self.src.watch {
            let filters = serde_json::json!({ "type": ["service", "container", "node"] });
            match engine.events_matching(since, &filters).await {
                Ok(e) => events = Some(e),
                Err(e) => return End::Lost(format!("event stream: {e}")),
            }
        }
        let mut settle_rounds = 0;
        loop {
            let listed = match swarm::list(engine).await {
                Ok(l) => l,
                Err(e) => return End::Lost(e.to_string()),
            };
            if !self.listed {
                tracing::info!(endpoint = %self.src.endpoint, api = %engine.api_version(), servers = listed.containers.len(), "swarm listed");
            }
            self.containers = listed.containers;
            self.down = None;
            self.listed = true;
            if !self.publish().await {
                return End::Stop;
            }
            if !self.src.watch {
                return End::Stop;
            }
            settle_rounds = if listed.starting {
                settle_rounds + 1
            } else {
                0
            };
            let wait = if listed.starting && settle_rounds <= MAX_SETTLE_ROUNDS {
                SETTLE
            } else {
                refresh
            };
            let deadline = tokio::time::Instant::now() + wait;
            let Some(stream) = events.as_mut() else {
                tokio::time::sleep_until(deadline).await;
                continue;
            };
            // Wait for a change or the deadline, then take whatever else is already waiting:
            // a burst of events is one list.
            loop {
                tokio::select! {
                    m = stream.next_message() => match m {
                        Some(Ok(m)) if swarm::relevant(&m) => break,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return End::Lost(format!("event stream: {e}")),
                        None => return End::Lost("event stream closed".into()),
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            while let Some(m) = stream.next_message().now_or_never() {
                match m {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Lost(format!("event stream: {e}")),
                    None => return End::Lost("event stream closed".into()),
                }
            }
        }
    }

    /// Record the engine's state for the API.
    fn report(&self, routers: usize) {
        let s = &self.src.settings;
        let mut all = engines_table();
        let state = match (&self.down, self.src.watch) {
            (Some(_), _) => "unreachable",
            (None, true) => "connected",
            (None, false) => "listed",
        };
        let since = match all.get(&s.namespace) {
            Some((_, old)) if old.state == state => old.since,
            _ => (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                .map_or(0, |d| d.as_secs()),
        };
        let status = EngineStatus {
            provider: s.namespace.clone(),
            endpoint: self.src.endpoint.to_string(),
            swarm: s.swarm,
            state,
            error: self.down.clone(),
            containers: self.containers.len(),
            routers,
            since,
        };
        all.insert(s.namespace.clone(), (self.id, status));
    }

    /// Build and send the fragment if it changed; false when the assembler is gone.
    async fn publish(&mut self) -> bool {
        let s = &self.src.settings;
        let mut fragment = build(&self.containers, s);
        let routers = (fragment.config.http.as_ref()).map_or(0, |h| h.routers.len());
        self.report(routers);
        if let Some(why) = &self.down {
            fragment.problems.push(Problem::new(
                format!("provider {}", s.namespace),
                format!(
                    "cannot reach the engine at {}: {why}; serving the last known containers",
                    self.src.endpoint
                ),
            ));
        }
        if self.last.as_ref() == Some(&fragment) {
            return true;
        }
        for p in &fragment.problems {
            if self.last.as_ref().is_none_or(|l| !l.problems.contains(p)) {
                tracing::warn!(problem = %p, "docker provider");
            }
        }
        self.last = Some(fragment.clone());
        self.tx.send((s.namespace.clone(), fragment)).await.is_ok()
    }
}

/// Record what the stream gave (a later event about the same container wins), or how the
/// session ends when it broke.
fn note(
    pending: &mut BTreeMap<String, bool>,
    next: Option<Result<Event, ApiError>>,
) -> Result<(), End> {
    match next {
        Some(Ok(Event::Refresh(id))) => pending.insert(id, true),
        Some(Ok(Event::Gone(id))) => pending.insert(id, false),
        Some(Err(e)) => return Err(End::Lost(format!("event stream: {e}"))),
        None => return Err(End::Lost("event stream closed".into())),
    };
    Ok(())
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
