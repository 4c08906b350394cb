//! Writes a run to the store as it happens, from a thread of its own: the store's drivers are
//! blocking (and the PostgreSQL one must not run inside the async client), and the client must
//! never wait for a disk. Each request is written when it finishes, so a crash or Ctrl-C loses
//! at most the requests in flight.

use std::sync::mpsc;
use std::thread::JoinHandle;

use super::BenchError;
use crate::store::record::{LevelRecord, ModelRecord, RequestRecord, RunRecord};
use crate::store::{Store, StoreError};

enum Message {
    UpdateRun(Box<RunRecord>),
    Model(Box<ModelRecord>),
    Level(Box<LevelRecord>),
    Requests(Vec<RequestRecord>),
}

/// A handle that queues writes for the store thread; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    run_id: String,
    tx: mpsc::Sender<Message>,
}

/// The store thread; [`RecorderThread::finish`] waits for every queued write.
pub struct RecorderThread {
    handle: JoinHandle<(Store, Option<StoreError>)>,
}

impl Recorder {
    /// Starts the store thread for run `run` (written first).
    pub fn start(mut store: Store, run: &RunRecord) -> Result<(Self, RecorderThread), BenchError> {
        store.insert_run(run)?;
        let (tx, rx) = mpsc::channel::<Message>();
        let run_id = run.id.clone();
        let id = run_id.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}store", super::resources::CLIENT_THREAD_PREFIX))
            .spawn(move || {
                let mut first_error = None;
                let mut pending = rx.recv().ok();
                while let Some(message) = pending.take() {
                    let result = match message {
                        Message::Requests(mut batch) => {
                            // Whatever else is queued already goes into the same transaction.
                            loop {
                                match rx.try_recv() {
                                    Ok(Message::Requests(more)) => batch.extend(more),
                                    Ok(other) => {
                                        pending = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            store.insert_requests(&id, &batch)
                        }
                        Message::UpdateRun(r) => store.update_run(&r),
                        Message::Model(m) => store.upsert_model(&id, &m),
                        Message::Level(l) => store.upsert_level(&id, &l),
                    };
                    if let Err(e) = result {
                        tracing::error!("writing the run to the store: {e}");
                        first_error.get_or_insert(e);
                    }
                    if pending.is_none() {
                        pending = rx.recv().ok();
                    }
                }
                (store, first_error)
            })
            .map_err(BenchError::Thread)?;
        Ok((Self { run_id, tx }, RecorderThread { handle }))
    }

    /// The run being recorded.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Replaces the run's status, end time, options and client health.
    pub fn update_run(&self, run: &RunRecord) {
        let _ = self.tx.send(Message::UpdateRun(Box::new(run.clone())));
    }

    /// Writes (or rewrites) a model's record.
    pub fn model(&self, model: &ModelRecord) {
        let _ = self.tx.send(Message::Model(Box::new(model.clone())));
    }

    /// Writes (or rewrites) a level's record.
    pub fn level(&self, level: &LevelRecord) {
        let _ = self.tx.send(Message::Level(Box::new(level.clone())));
    }

    /// Writes a finished request.
    pub fn request(&self, request: RequestRecord) {
        let _ = self.tx.send(Message::Requests(vec![request]));
    }
}

impl RecorderThread {
    /// Waits until every write queued by every (dropped) [`Recorder`] is done; returns the
    /// store, or the first write error (after writing all it could).
    pub fn finish(self) -> Result<Store, BenchError> {
        match self.handle.join() {
            Ok((store, None)) => Ok(store),
            Ok((_, Some(e))) => Err(BenchError::Store(e)),
            Err(_) => Err(BenchError::Thread(std::io::Error::other(
                "the store thread panicked",
            ))),
        }
    }
}
