//! The in-process cycle of a lock in etcd: the Rust library's acquire +
//! release (the component in its sandbox, over the host's `kv`), against
//! etcd's own lock service as its clients use it per critical section: a
//! lease granted, `lock`, `unlock`, the lease revoked (what `etcdctl lock`
//! does around a command). Alternated in blocks on the same cluster;
//! prints the medians of the blocks' per-cycle means.
//!
//! Usage: etcd_cycle HOST:PORT[,HOST:PORT...] [BLOCKS] [CYCLES]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use etcd_client::{Client, LockOptions};
use lockfile_host::etcd::EtcdStore;
use lockfile_host::{AcquireOptions, KvFor, Runtime};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let endpoints: Vec<String> = args
        .next()
        .context("give the endpoints: HOST:PORT[,HOST:PORT...]")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let blocks: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let cycles: u32 = args.next().map_or(Ok(100), |a| a.parse())?;

    let runtime = Runtime::new()?;
    let store = Arc::new(
        EtcdStore::connect(&endpoints, Duration::from_secs(5)).map_err(anyhow::Error::msg)?,
    );
    let name = format!("etcd://{}/bench/library", endpoints.join(","));
    let mut ours = runtime.open_kv(store, &name, "bench/library", KvFor::This)?;
    let options = AcquireOptions {
        lease: Some(Duration::from_secs(10)),
        ..AcquireOptions::default()
    };

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut theirs = tokio.block_on(Client::connect(&endpoints, None))?;

    let (mut ours_us, mut theirs_us) = (Vec::new(), Vec::new());
    for block in 0..=blocks {
        let start = Instant::now();
        for _ in 0..cycles {
            ours.acquire_with(options)?;
            ours.release(false)?;
        }
        let ours_block = start.elapsed();
        let start = Instant::now();
        tokio.block_on(async {
            for _ in 0..cycles {
                let lease = theirs.lease_grant(10, None).await?.id();
                let locked = theirs
                    .lock("bench/etcd", Some(LockOptions::new().with_lease(lease)))
                    .await?;
                theirs.unlock(locked.key()).await?;
                theirs.lease_revoke(lease).await?;
            }
            Ok::<_, etcd_client::Error>(())
        })?;
        let theirs_block = start.elapsed();
        // The first block warms both up.
        if block > 0 {
            ours_us.push(ours_block.as_secs_f64() * 1e6 / f64::from(cycles));
            theirs_us.push(theirs_block.as_secs_f64() * 1e6 / f64::from(cycles));
        }
    }
    let (o, t) = (median(ours_us), median(theirs_us));
    println!("BENCH library_etcd_cycle {o:.1} us");
    println!("BENCH etcd_client_lock_cycle {t:.1} us");
    println!("RATIO library_etcd_vs_etcd_client_lock {:.2}", o / t);
    Ok(())
}
