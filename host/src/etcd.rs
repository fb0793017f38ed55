//! The key-value store of `lockfile_core::kv` over etcd v3: each call one
//! request, a transaction where it has a condition.
//!
//! etcd's client is asynchronous (tonic); the store is called from
//! synchronous code that may itself run inside a tokio runtime (the one the
//! library enters around every call into the sandbox), where blocking on
//! another runtime panics. So the client lives on a thread of its own with
//! its own runtime, and each call is a job sent to it and waited for.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use lockfile_core::kv::{Entry, Store};

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A connection to an etcd cluster, as a [`Store`].
#[derive(Debug)]
pub struct EtcdStore {
    jobs: Mutex<mpsc::Sender<Job>>,
    timeout: Duration,
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`host:port`), giving up
    /// after `timeout` (which also bounds every later request).
    ///
    /// # Errors
    /// In words, when no endpoint answers within `timeout`.
    pub fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::channel::<Result<(), String>>();
        let endpoints = endpoints.to_vec();
        std::thread::Builder::new()
            .name("lockfile-etcd".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(format!("cannot start the etcd client: {e}")));
                        return;
                    }
                };
                let options = ConnectOptions::new()
                    .with_connect_timeout(timeout)
                    .with_timeout(timeout);
                let client = runtime.block_on(async {
                    tokio::time::timeout(timeout, Client::connect(&endpoints, Some(options))).await
                });
                let client = match client {
                    Ok(Ok(client)) => client,
                    Ok(Err(e)) => {
                        let _ = ready.send(Err(format!(
                            "cannot connect to etcd at {}: {e}",
                            endpoints.join(",")
                        )));
                        return;
                    }
                    Err(_) => {
                        let _ = ready.send(Err(format!(
                            "no etcd endpoint answered within {timeout:?}: {}",
                            endpoints.join(",")
                        )));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                for job in queue {
                    runtime.block_on(job(client.clone()));
                }
            })
            .map_err(|e| format!("cannot start the etcd client's thread: {e}"))?;
        connected
            .recv()
            .map_err(|_| "the etcd client's thread ended".to_owned())??;
        Ok(EtcdStore {
            jobs: Mutex::new(jobs),
            timeout,
        })
    }

    /// Runs `request` on the client's thread, within the timeout.
    fn call<T, F>(&self, request: impl FnOnce(Client) -> F + Send + 'static) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (reply, answer) = mpsc::channel();
        let timeout = self.timeout;
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let answered = match tokio::time::timeout(timeout, request(client)).await {
                    Ok(done) => done.map_err(|e| format!("etcd: {e}")),
                    Err(_) => Err(format!("etcd did not answer within {timeout:?}")),
                };
                let _ = reply.send(answered);
            })
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| "the etcd client's thread ended".to_owned())?;
        answer
            .recv()
            .map_err(|_| "the etcd client's thread ended".to_owned())?
    }
}

fn entry(kv: &KeyValue) -> Entry {
    Entry {
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, String> {
        let key = key.to_owned();
        self.call(move |mut c| async move {
            let found = c.get(key, None).await?;
            Ok(found.kvs().first().map(entry))
        })
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Entry>, String> {
        let (key, value) = (key.to_owned(), value.to_vec());
        let done = self.call(move |mut c| async move {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key, None)]);
            c.txn(txn).await
        })?;
        if done.succeeded() {
            let revision = done.header().map_or(0, |h| h.revision());
            return Ok(Ok(revision));
        }
        // The comparison failed and the get ran in the same transaction: the
        // key exists, and this is it.
        match done.op_responses().first() {
            Some(TxnOpResponse::Get(got)) => match got.kvs().first() {
                Some(kv) => Ok(Err(entry(kv))),
                None => Err("etcd: the key existed and then did not, in one transaction".into()),
            },
            _ => Err("etcd: the transaction answered without the key".into()),
        }
    }

    fn delete_if(&self, key: &str, mod_revision: i64) -> Result<bool, String> {
        let key = key.to_owned();
        let done = self.call(move |mut c| async move {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    mod_revision,
                )])
                .and_then([TxnOp::delete(key, None)]);
            c.txn(txn).await
        })?;
        Ok(done.succeeded())
    }

    fn grant(&self, ttl: Duration) -> Result<i64, String> {
        // etcd's leases are in whole seconds.
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        self.call(move |mut c| async move { Ok(c.lease_grant(seconds, None).await?.id()) })
    }

    fn keep_alive(&self, lease: i64) -> Result<bool, String> {
        self.call(move |mut c| async move {
            let (mut keeper, mut answers) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(answers.message().await?.is_some_and(|a| a.ttl() > 0))
        })
    }

    fn revoke(&self, lease: i64) -> Result<(), String> {
        match self.call(move |mut c| async move { c.lease_revoke(lease).await }) {
            Ok(_) => Ok(()),
            // Already gone (it ran out): what revoking it wanted.
            Err(e) if e.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
