//! The gateway half of the demo: a local PostgreSQL primary with two hot standbys, `sluice proxy`
//! in front of them (the real command, as a child process, with a config file the user can
//! reuse), and a short workload that shows pooling, read routing and sticky reads.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use sluice_cluster::{Cluster, ClusterSpec, Node};
use tokio_postgres::{Client, NoTls};

/// Client connections the pooling workload opens at once, and what each runs.
const CLIENTS: usize = 40;
const TRANSACTIONS_PER_CLIENT: usize = 25;
/// Server connections the demo's pool may open: far fewer than the clients.
const POOL_SIZE: u32 = 4;

/// A running `sluice proxy` child; stopped on drop.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // SIGTERM first so it can close its server connections, then make sure.
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a primary and two hot standbys with a `sales` table the apps can read.
pub fn start_cluster() -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 2,
        ..Default::default()
    })
    .context("cannot start the local PostgreSQL cluster")?;
    cluster.sql_in(
        cluster.primary(),
        sluice_cluster::APP_DATABASE,
        "CREATE TABLE sales (id bigserial PRIMARY KEY, region text NOT NULL, \
                             amount numeric(10,2) NOT NULL, sold_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO sales (region, amount, sold_at) \
           SELECT (ARRAY['EMEA','AMER','APAC'])[1 + i % 3], round((random() * 900 + 100)::numeric, 2), \
                  now() - i * interval '1 hour' FROM generate_series(1, 500) AS i; \
         ALTER TABLE sales OWNER TO app",
    )?;
    cluster.wait_caught_up()?;
    for node in cluster.nodes() {
        println!(
            "  {:<9} 127.0.0.1:{}  ({:?})",
            node.name(),
            node.port(),
            node.role()
        );
    }
    Ok(cluster)
}

/// Writes the gateway's config and userlist into `dir` and starts `sluice proxy` on it.
pub fn start_gateway(cluster: &Cluster, dir: &Path) -> anyhow::Result<GatewayProcess> {
    std::fs::create_dir_all(dir)?;
    let port = sluice_cluster::free_port()?;
    let replicas: Vec<String> = cluster
        .replicas()
        .iter()
        .map(|r| format!("\"{}\"", r.addr()))
        .collect();
    let config = dir.join("sluice-proxy.toml");
    std::fs::write(dir.join("userlist.txt"), "\"app\" \"app\"\n")?;
    std::fs::write(
        &config,
        format!(
            "# Written by `sluice demo`: the gateway in front of the demo's local cluster.\n\
             [proxy]\n\
             listen_addr = \"127.0.0.1\"\n\
             listen_port = {port}\n\
             pool_mode = \"transaction\"\n\
             max_client_conn = 500\n\
             default_pool_size = {POOL_SIZE}\n\
             reserve_pool_size = 0\n\
             auth_type = \"scram-sha-256\"\n\
             auth_file = \"userlist.txt\"\n\
             \n\
             [databases.app]\n\
             host = \"127.0.0.1\"\n\
             port = {primary}\n\
             replicas = [{replicas}]\n\
             \n\
             [load_balancing]\n\
             enabled = true\n\
             replica_check_interval = 0.1\n\
             sticky = \"connection\"\n\
             sticky_ttl = 30\n",
            primary = cluster.primary().port(),
            replicas = replicas.join(", "),
        ),
    )?;
    let log = dir.join("gateway.log");
    let exe = std::env::current_exe().context("cannot find the sluice binary")?;
    let child = Command::new(exe)
        .args(["proxy", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .env("RUST_LOG", "warn")
        .spawn()
        .context("cannot start `sluice proxy`")?;
    let mut gateway = GatewayProcess {
        child,
        port,
        config,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(gateway);
        }
        if let Ok(Some(status)) = gateway.child.try_wait() {
            let log = std::fs::read_to_string(&gateway.log).unwrap_or_default();
            bail!("`sluice proxy` exited ({status}): {}", log.trim());
        }
        if Instant::now() > deadline {
            bail!("`sluice proxy` did not listen on 127.0.0.1:{port} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The PostgreSQL URL apps use to read through the gateway.
pub fn gateway_url(gateway: &GatewayProcess) -> String {
    format!("postgresql://app:app@127.0.0.1:{}/app", gateway.port)
}

/// Runs the workload and prints what it shows.
pub fn run_workload(cluster: &Cluster, gateway: &GatewayProcess) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), workload(cluster, gateway))
            .await
            .map_err(|_| anyhow!("the demo workload did not finish within 120 s"))?
    })
}

async fn connect(port: u16, user: &str, password: &str) -> anyhow::Result<Client> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname=app connect_timeout=10"
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port} as {user}"))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn served_by(client: &Client) -> anyhow::Result<u16> {
    let row = client.query_one("SELECT inet_server_port()", &[]).await?;
    Ok(row.get::<_, i32>(0) as u16)
}

fn node_name(cluster: &Cluster, port: u16) -> String {
    cluster
        .nodes()
        .find(|n| n.port() == port)
        .map_or_else(|| format!("port {port}"), |n| n.name().to_string())
}

async fn workload(cluster: &Cluster, gateway: &GatewayProcess) -> anyhow::Result<()> {
    pooling(cluster, gateway).await?;
    routing(cluster, gateway).await?;
    sticky_reads(cluster, gateway).await
}

/// Many clients, few server connections: counts what the primary really sees.
async fn pooling(cluster: &Cluster, gateway: &GatewayProcess) -> anyhow::Result<()> {
    println!();
    println!(
        "  Pooling: {CLIENTS} clients x {TRANSACTIONS_PER_CLIENT} transactions (BEGIN; INSERT; SELECT; COMMIT) \
         through the gateway, default_pool_size = {POOL_SIZE}"
    );
    let observer = connect(cluster.primary().port(), "postgres", "postgres").await?;
    let busiest = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watch = {
        let (busiest, done) = (busiest.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(row) = observer
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' \
                         AND backend_type = 'client backend' \
                         AND application_name <> 'sluice-health-check'",
                        &[],
                    )
                    .await
                {
                    busiest.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let port = gateway.port;
        tasks.push(tokio::spawn(async move {
            let mut client = connect(port, "app", "app").await?;
            let region = ["EMEA", "AMER", "APAC"][i % 3];
            for _ in 0..TRANSACTIONS_PER_CLIENT {
                let tx = client.transaction().await?;
                tx.execute(
                    "INSERT INTO sales (region, amount) VALUES ($1, 42.00)",
                    &[&region],
                )
                .await?;
                tx.query_one("SELECT count(*) FROM sales WHERE region = $1", &[&region])
                    .await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    let mut failed = 0;
    for task in tasks {
        if task
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r)
            .is_err()
        {
            failed += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watch.await;
    let elapsed = started.elapsed();
    let total = CLIENTS * TRANSACTIONS_PER_CLIENT;
    println!(
        "  -> {} transactions from {CLIENTS} client connections in {:.1} s ({:.0}/s), {failed} clients failed",
        total - failed * TRANSACTIONS_PER_CLIENT,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  -> the primary saw at most {} pooled server connections for user app (pg_stat_activity; \
         the replica health check's own connection aside)",
        busiest.load(Ordering::Relaxed)
    );
    if failed > 0 {
        bail!("{failed} demo clients failed");
    }
    Ok(())
}

/// Reads outside a transaction go to the standbys; writes go to the primary.
async fn routing(cluster: &Cluster, gateway: &GatewayProcess) -> anyhow::Result<()> {
    println!();
    println!("  Routing: 12 reads (SELECT inet_server_port()) and one write through the gateway");
    let client = connect(gateway.port, "app", "app").await?;
    // The pooling workload just wrote: let both standbys catch up and the gateway's health check
    // see them in rotation, so the reads show the balance rather than a momentary lag exclusion.
    cluster.wait_caught_up()?;
    wait_for_replicas_in_rotation(&client).await?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..12 {
        *counts
            .entry(node_name(cluster, served_by(&client).await?))
            .or_default() += 1;
    }
    let spread: Vec<String> = counts.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    println!("  -> reads served by {}", spread.join(", "));
    let row = client
        .query_one(
            "WITH w AS (INSERT INTO sales (region, amount) VALUES ('EMEA', 1) RETURNING id) \
             SELECT inet_server_port() FROM w",
            &[],
        )
        .await?;
    println!(
        "  -> the write was served by {}",
        node_name(cluster, row.get::<_, i32>(0) as u16)
    );
    Ok(())
}

/// `SHOW sluice.hosts` rows as (role, state, lag_bytes).
async fn hosts(client: &Client) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut rows = Vec::new();
    for message in client.simple_query("SHOW sluice.hosts").await? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let column = |name: &str| row.get(name).unwrap_or("").to_string();
            rows.push((column("role"), column("state"), column("lag_bytes")));
        }
    }
    Ok(rows)
}

/// Waits (up to 10 s) until the gateway reports every replica up with no lag.
async fn wait_for_replicas_in_rotation(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = hosts(client).await?;
        let replicas: Vec<_> = rows.iter().filter(|(role, ..)| role != "primary").collect();
        if !replicas.is_empty()
            && replicas
                .iter()
                .all(|(_, state, lag)| state == "up" && lag == "0")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the gateway does not see both standbys in rotation: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With replay paused on both standbys, a client's own write is still visible to its next read
/// (served by the primary); once the standbys catch up, its reads go back to them.
async fn sticky_reads(cluster: &Cluster, gateway: &GatewayProcess) -> anyhow::Result<()> {
    println!();
    println!("  Sticky reads: WAL replay paused on both standbys (pg_wal_replay_pause())");
    for replica in cluster.replicas() {
        cluster.pause_replay(replica)?;
    }
    let result = async {
        let client = connect(gateway.port, "app", "app").await?;
        let id: i64 = client
            .query_one(
                "INSERT INTO sales (region, amount) VALUES ('APAC', 7.00) RETURNING id",
                &[],
            )
            .await?
            .get(0);
        let (seen, served_by) = read_back(cluster, &client, id).await?;
        println!(
            "  -> wrote sale {id}; the same client read it back: {} (served by {served_by})",
            visibility(seen)
        );
        let stale = stale_on(cluster, &cluster.replicas()[0], id)?;
        println!(
            "  -> meanwhile {} itself still {} it: a plain round-robin read would have been stale",
            cluster.replicas()[0].name(),
            if stale { "lacks" } else { "has" }
        );
        if !seen {
            bail!("sticky read did not see the client's own write");
        }
        anyhow::Ok((client, id))
    }
    .await;
    for replica in cluster.replicas() {
        cluster.resume_replay(replica)?;
    }
    let (client, id) = result?;
    cluster.wait_caught_up()?;
    // The gateway's health check (every 0.1 s) sees the new replay positions shortly after;
    // until then the client's reads stay on the primary.
    let resumed = Instant::now();
    let mut reads = 0;
    loop {
        let (seen, served_by) = read_back(cluster, &client, id).await?;
        reads += 1;
        let on_replica = served_by != cluster.primary().name();
        if on_replica || resumed.elapsed() > Duration::from_secs(10) {
            println!(
                "  -> replay resumed and caught up: the read is {} and served by {served_by} \
                 ({reads} read{} in {} ms after catching up)",
                visibility(seen),
                if reads == 1 { "" } else { "s" },
                resumed.elapsed().as_millis()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads sale `id` back: whether it is there, and which node served the read.
async fn read_back(cluster: &Cluster, client: &Client, id: i64) -> anyhow::Result<(bool, String)> {
    let row = client
        .query_one(
            "SELECT count(*), inet_server_port() FROM sales WHERE id = $1",
            &[&id],
        )
        .await?;
    let (count, port): (i64, i32) = (row.get(0), row.get(1));
    Ok((count == 1, node_name(cluster, port as u16)))
}

fn visibility(seen: bool) -> &'static str {
    if seen {
        "visible"
    } else {
        "MISSING"
    }
}

fn stale_on(cluster: &Cluster, replica: &Node, id: i64) -> anyhow::Result<bool> {
    let count = cluster.sql_in(
        replica,
        sluice_cluster::APP_DATABASE,
        &format!("SELECT count(*) FROM sales WHERE id = {id}"),
    )?;
    Ok(count == "0")
}

/// Flushes stdout so the demo's progress shows before slow steps.
pub fn flush() {
    let _ = std::io::stdout().flush();
}
