//! The key-value store of `lockfile_core::kv` over etcd v3: each call one
//! request, a transaction where it has a condition.
//!
//! etcd's client is asynchronous (tonic); the store is called from
//! synchronous code that may itself run inside a tokio runtime (the one the
//! library enters around every call into the sandbox), where blocking on
//! another runtime panics. So the clients live on a thread of their own
//! with its own runtime, and each call is a job sent to it and waited for.
//!
//! One client per member, not etcd-client's balanced channel over all of
//! them: that one keeps sending requests to a member that is down (each
//! fails with "connection refused"), so one member of three stopped would
//! fail every lock. A request that could not reach its member (it was never
//! sent) goes to the next; the member that answered serves the next calls.
//! A request that was sent and got no answer is not retried: its error is
//! reported, and the lock protocol allows for a write that may have landed.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use lockfile_core::kv::{Entry, Store};

/// A call run on the clients' thread: given the clients and the one to try
/// first, it answers and returns the one that served it.
type Job =
    Box<dyn FnOnce(Vec<Client>, usize) -> Pin<Box<dyn Future<Output = usize> + Send>> + Send>;

/// How to reach a cluster: the bound on each request, TLS, credentials.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// How long connecting, and each request, may take.
    pub timeout: Duration,
    /// TLS (the members' URLs are then `https`); none: plain TCP.
    pub tls: Option<EtcdTls>,
    /// User name and password, for a cluster with authentication on.
    pub user: Option<(String, String)>,
}

impl EtcdOptions {
    /// Plain TCP, no credentials, `timeout` per request.
    pub fn plain(timeout: Duration) -> Self {
        EtcdOptions {
            timeout,
            tls: None,
            user: None,
        }
    }

    /// TLS (for `etcds://`, `tls`) and credentials from the environment:
    /// `LOCKFILE_ETCD_CA`, `LOCKFILE_ETCD_CERT` and `LOCKFILE_ETCD_KEY`
    /// (PEM files), `LOCKFILE_ETCD_USER` and `LOCKFILE_ETCD_PASSWORD`.
    ///
    /// # Errors
    /// In words: a file that cannot be read, half a pair given, TLS without
    /// a CA, a client certificate without TLS.
    pub fn from_env(tls: bool, timeout: Duration) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            var(name)
                .map(|path| {
                    std::fs::read(&path).map_err(|e| {
                        format!(
                            "cannot read {name}={path}: {}",
                            lockfile_core::plain::words(&e)
                        )
                    })
                })
                .transpose()
        };
        let mut options = EtcdOptions::plain(timeout);
        let ca = read("LOCKFILE_ETCD_CA")?;
        let identity = match (read("LOCKFILE_ETCD_CERT")?, read("LOCKFILE_ETCD_KEY")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err("give both LOCKFILE_ETCD_CERT and LOCKFILE_ETCD_KEY, or neither".into())
            }
        };
        match (tls, ca) {
            (true, Some(ca_pem)) => options.tls = Some(EtcdTls { ca_pem, identity }),
            (true, None) => {
                return Err(
                    "etcds:// needs the CA that signed the members' certificates: \
                            set LOCKFILE_ETCD_CA"
                        .into(),
                )
            }
            (false, _) if identity.is_some() => {
                return Err("a client certificate is for TLS: use etcds://".into())
            }
            (false, _) => {}
        }
        options.user = match (var("LOCKFILE_ETCD_USER"), var("LOCKFILE_ETCD_PASSWORD")) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => {
                return Err(
                    "give both LOCKFILE_ETCD_USER and LOCKFILE_ETCD_PASSWORD, or neither".into(),
                )
            }
        };
        Ok(options)
    }
}

/// TLS to the members: the CA that signed their certificates, and our
/// certificate and key where they check clients (`--client-cert-auth`).
#[derive(Clone)]
pub struct EtcdTls {
    /// The CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// Our certificate chain and private key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection to an etcd cluster, as a [`Store`].
#[derive(Debug)]
pub struct EtcdStore {
    jobs: Mutex<mpsc::Sender<Job>>,
    timeout: Duration,
}

/// Whether `e` says the request never reached its member (nothing was
/// written): then another member may be asked.
fn unreached(e: &etcd_client::Error) -> bool {
    let text = e.to_string();
    text.contains("connect error") || text.contains("Connection refused")
}

/// Whether `e` is the transport's or the cluster's passing trouble (a
/// broken connection, a leader election, no answer) rather than an answer:
/// a request that may be repeated goes to the next member then.
fn transient(e: &etcd_client::Error) -> bool {
    // gRPC's codes: CANCELLED 1, UNKNOWN 2, DEADLINE_EXCEEDED 4, ABORTED 10,
    // UNAVAILABLE 14.
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code() as i32, 1 | 2 | 4 | 10 | 14)
        }
        _ => unreached(e),
    }
}

/// Whether a request may be sent to another member after one that may
/// have reached its member: reads, lease grants (an extra lease runs out
/// unused), renewals and revocations. Conditional writes may not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeatable {
    Yes,
    No,
}

impl EtcdStore {
    /// Opens clients for the members at `endpoints` (`host:port`); every
    /// request is bounded by `timeout`. Nothing is sent yet: an unreachable
    /// cluster is reported by the first request.
    ///
    /// # Errors
    /// In words, when an endpoint is not an address or the client's thread
    /// cannot start.
    pub fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, String> {
        Self::connect_with(endpoints, &EtcdOptions::plain(timeout))
    }

    /// As [`EtcdStore::connect`], with TLS and credentials as `options`
    /// say. With credentials, each member is asked for a token now: the
    /// members that answer serve the calls, and a wrong password, or a
    /// certificate the members refuse, fails here.
    ///
    /// # Errors
    /// In words, when no member can be reached or it refuses us.
    pub fn connect_with(endpoints: &[String], options: &EtcdOptions) -> Result<Self, String> {
        let timeout = options.timeout;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::channel::<Result<(), String>>();
        let endpoints = endpoints.to_vec();
        let given = options.clone();
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
                let mut connect = ConnectOptions::new()
                    .with_connect_timeout(timeout)
                    .with_timeout(timeout);
                if let Some(tls) = &given.tls {
                    let mut config =
                        TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
                    if let Some((cert, key)) = &tls.identity {
                        config = config.identity(Identity::from_pem(cert, key));
                    }
                    connect = connect.with_tls(config);
                }
                if let Some((user, password)) = &given.user {
                    connect = connect.with_user(user.clone(), password.clone());
                }
                let clients: Result<Vec<Client>, String> = runtime.block_on(async {
                    let mut clients = Vec::new();
                    let mut refused = None;
                    for endpoint in &endpoints {
                        let attempt = tokio::time::timeout(
                            timeout,
                            Client::connect([endpoint], Some(connect.clone())),
                        )
                        .await;
                        match attempt {
                            Ok(Ok(client)) => clients.push(client),
                            Ok(Err(e)) => {
                                refused = Some(format!("cannot connect to etcd at {endpoint}: {e}"))
                            }
                            Err(_) => {
                                refused = Some(format!(
                                    "etcd at {endpoint} did not answer within {timeout:?}"
                                ))
                            }
                        }
                    }
                    match (clients.is_empty(), refused) {
                        (true, Some(why)) => Err(why),
                        _ => Ok(clients),
                    }
                });
                let clients = match clients {
                    Ok(clients) => clients,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let mut first = 0;
                for job in queue {
                    first = runtime.block_on(job(clients.clone(), first));
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

    /// Runs `request` on the clients' thread, within the timeout.
    fn call<T, F>(
        &self,
        repeatable: Repeatable,
        request: impl Fn(Client) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        self.call_within(self.timeout, repeatable, request)
    }

    /// Runs `request` within `timeout` on the member that served the last
    /// call, or on the next while it cannot be reached; a `repeatable` one
    /// also while a member does not answer or is in passing trouble. A
    /// member that did not answer in time is asked last next time.
    fn call_within<T, F>(
        &self,
        timeout: Duration,
        repeatable: Repeatable,
        request: impl Fn(Client) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (reply, answer) = mpsc::channel();
        let job: Job = Box::new(move |clients, first| {
            Box::pin(async move {
                let n = clients.len().max(1);
                let mut last = Err("no etcd endpoint was given".to_owned());
                let again = repeatable == Repeatable::Yes;
                for i in 0..n {
                    let at = (first + i) % n;
                    let Some(client) = clients.get(at) else { break };
                    match tokio::time::timeout(timeout, request(client.clone())).await {
                        Ok(Err(e)) if unreached(&e) || (again && transient(&e)) => {
                            last = Err(format!("etcd: {e}"));
                        }
                        Ok(done) => {
                            let _ = reply.send(done.map_err(|e| format!("etcd: {e}")));
                            return at;
                        }
                        Err(_) if again => {
                            last = Err(format!("etcd did not answer within {timeout:?}"));
                        }
                        Err(_) => {
                            let _ =
                                reply.send(Err(format!("etcd did not answer within {timeout:?}")));
                            return (at + 1) % n;
                        }
                    }
                }
                let _ = reply.send(last);
                (first + 1) % n
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
        self.call(Repeatable::Yes, move |mut c| {
            let key = key.clone();
            async move {
                let found = c.get(key, None).await?;
                Ok(found.kvs().first().map(entry))
            }
        })
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Entry>, String> {
        let (key, value) = (key.to_owned(), value.to_vec());
        let done = self.call(Repeatable::No, move |mut c| {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            async move { c.txn(txn).await }
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
        let done = self.call(Repeatable::No, move |mut c| {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    mod_revision,
                )])
                .and_then([TxnOp::delete(key.clone(), None)]);
            async move { c.txn(txn).await }
        })?;
        Ok(done.succeeded())
    }

    fn grant(&self, ttl: Duration) -> Result<i64, String> {
        // etcd's leases are in whole seconds.
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        self.call(Repeatable::Yes, move |mut c| async move {
            Ok(c.lease_grant(seconds, None).await?.id())
        })
    }

    fn keep_alive(&self, lease: i64) -> Result<bool, String> {
        self.call(Repeatable::Yes, move |mut c| async move {
            let (mut keeper, mut answers) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            match answers.message().await {
                Ok(answer) => Ok(answer.is_some_and(|a| a.ttl() > 0)),
                // Gone (it ran out, or was revoked): not renewed.
                Err(e) if e.to_string().contains("lease not found") => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// A watch from `revision + 1`: the first event on the key ends it.
    /// A revision compacted away means the key changed since.
    fn wait_change(
        &self,
        key: &str,
        revision: i64,
        limit: Duration,
    ) -> Option<Result<bool, String>> {
        let key = key.to_owned();
        Some(
            self.call_within(limit + self.timeout, Repeatable::Yes, move |mut c| {
                let key = key.clone();
                async move {
                    let watching = async move {
                        let options = WatchOptions::new().with_start_revision(revision + 1);
                        let mut stream = c.watch(key, Some(options)).await?;
                        while let Some(answer) = stream.message().await? {
                            if answer.compact_revision() > 0 || !answer.events().is_empty() {
                                return Ok(true);
                            }
                            if answer.canceled() {
                                return Ok(true);
                            }
                        }
                        Ok(true)
                    };
                    match tokio::time::timeout(limit, watching).await {
                        Ok(changed) => changed,
                        Err(_) => Ok(false),
                    }
                }
            }),
        )
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, String> {
        let prefix = prefix.to_owned();
        self.call(Repeatable::Yes, move |mut c| {
            let prefix = prefix.clone();
            async move {
                let found = c.get(prefix, Some(GetOptions::new().with_prefix())).await?;
                Ok(found
                    .kvs()
                    .iter()
                    .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), entry(kv)))
                    .collect())
            }
        })
    }

    fn revoke(&self, lease: i64) -> Result<(), String> {
        match self.call(Repeatable::Yes, move |mut c| async move {
            c.lease_revoke(lease).await
        }) {
            Ok(_) => Ok(()),
            // Already gone (it ran out): what revoking it wanted.
            Err(e) if e.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
