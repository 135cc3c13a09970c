//! A Redis Cluster of the test's own: three `redis-server` masters with `--cluster-enabled yes`
//! on free ports, joined by `redis-cli --cluster create`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Masters of the cluster (the fewest `redis-cli --cluster create` accepts).
const MASTERS: usize = 3;

/// A private three-master Redis Cluster (no replicas, no persistence). Its servers are killed
/// and its directory removed on drop.
#[derive(Debug)]
pub struct PrivateRedisCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
    /// Replicas added by [`PrivateRedisCluster::add_replica`]: port and process.
    replicas: Vec<(u16, Child)>,
}

impl PrivateRedisCluster {
    /// Starts three masters on free ports, creates the cluster over them and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tm-redis-cluster-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("private redis cluster dir");
        let mut cluster = Self {
            ports: Vec::new(),
            dir,
            children: Vec::new(),
            replicas: Vec::new(),
        };
        for _ in 0..MASTERS {
            cluster.spawn_node();
        }
        cluster.create();
        cluster
    }

    /// One cluster per test process, shared by its tests (each uses its own key prefix). A
    /// watchdog process kills its servers and removes its directory when the test process
    /// exits, since a static is never dropped.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<PrivateRedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = Self::start();
            cluster.watch_parent();
            cluster
        })
    }

    /// The ports of the masters.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `redis://127.0.0.1:<port>` of each master.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// Runs `cmd` on the node at `port` (not following redirections): for `DBSIZE`,
    /// `CLUSTER KEYSLOT`, `CLUSTER COUNTKEYSINSLOT` and the like.
    pub fn node_query<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> T {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("cluster node answers");
        cmd.query(&mut conn).expect("cluster node command")
    }

    /// The port of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        for &port in &self.ports {
            let nodes: String = self.node_query(port, redis::cmd("CLUSTER").arg("NODES"));
            for line in nodes.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 9
                    || !fields[2].contains("myself")
                    || !fields[2].contains("master")
                {
                    continue;
                }
                let serves = fields[8..].iter().any(|range| {
                    let mut bounds = range.split('-').map(str::parse::<u16>);
                    match (bounds.next(), bounds.next()) {
                        (Some(Ok(lo)), Some(Ok(hi))) => (lo..=hi).contains(&slot),
                        (Some(Ok(one)), None) => one == slot,
                        _ => false,
                    }
                });
                if serves {
                    return port;
                }
            }
        }
        panic!("no master serves slot {slot}")
    }

    /// Keys under `prefix` held by each master, in the order of [`PrivateRedisCluster::ports`].
    pub fn keys_per_master(&self, prefix: &str) -> Vec<usize> {
        self.ports
            .iter()
            .map(|&port| {
                let keys: Vec<String> =
                    self.node_query(port, redis::cmd("KEYS").arg(format!("{prefix}*")));
                keys.len()
            })
            .collect()
    }

    /// Kills master `index` (of [`PrivateRedisCluster::ports`]) abruptly, as a crash would.
    pub fn kill_node(&mut self, index: usize) {
        if let Some(child) = self.children.get_mut(index) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts master `index` again on its port with its cluster state file (so it rejoins with
    /// its slots), and waits until every node reports `cluster_state:ok`.
    pub fn restart_node(&mut self, index: usize) {
        self.kill_node(index);
        let port = self.ports[index];
        self.children[index] = self.spawn(port);
        self.wait_ok();
    }

    /// Adds a node beyond the masters: a replica of master `index` (of
    /// [`PrivateRedisCluster::ports`]), joined with `redis-cli --cluster add-node`. Waits until
    /// it has synced with its master and every master lists it; returns its port.
    pub fn add_replica(&mut self, index: usize) -> u16 {
        let master = self.ports[index];
        let id: String = self.node_query(master, redis::cmd("CLUSTER").arg("MYID"));
        let port = free_port();
        let child = self.spawn(port);
        self.replicas.push((port, child));
        let status = Command::new("redis-cli")
            .args(["--cluster", "add-node"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{master}"))
            .args(["--cluster-slave", "--cluster-master-id", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed to run the Redis Cluster tests");
        assert!(status.success(), "redis-cli --cluster add-node failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: String = self.node_query(port, redis::cmd("INFO").arg("replication"));
            let known = self.ports.iter().all(|&p| {
                let nodes: String = self.node_query(p, redis::cmd("CLUSTER").arg("NODES"));
                nodes.contains(&format!(":{port}@"))
            });
            if known && info.contains("master_link_status:up") {
                return port;
            }
            assert!(Instant::now() < deadline, "the replica never synced");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills master `index` (which must have a replica from
    /// [`PrivateRedisCluster::add_replica`]) and waits until a replica of it took over and
    /// every live node reports `cluster_state:ok`; returns the new master's port.
    pub fn fail_over(&mut self, index: usize) -> u16 {
        let old = self.ports[index];
        self.kill_node(index);
        let live: Vec<u16> = self
            .ports
            .iter()
            .copied()
            .filter(|&p| p != old)
            .chain(self.replicas.iter().map(|(p, _)| *p))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let promoted = self.replicas.iter().map(|(p, _)| *p).find(|&p| {
                let info: String = self.node_query(p, redis::cmd("INFO").arg("replication"));
                info.contains("role:master")
            });
            let ok = live.iter().all(|&p| {
                let info: String = self.node_query(p, redis::cmd("CLUSTER").arg("INFO"));
                info.contains("cluster_state:ok")
            });
            if let (Some(port), true) = (promoted, ok) {
                return port;
            }
            assert!(Instant::now() < deadline, "no replica took over");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn_node(&mut self) {
        let port = free_port();
        let child = self.spawn(port);
        self.children.push(child);
        self.ports.push(port);
    }

    fn spawn(&self, port: u16) -> Child {
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .arg("--cluster-config-file")
            .arg(node_dir.join("nodes.conf"))
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run the Redis Cluster tests");
        wait_answers(port);
        child
    }

    fn create(&self) {
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(self.ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed to run the Redis Cluster tests");
        assert!(status.success(), "redis-cli --cluster create failed");
        self.wait_ok();
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self.ports.iter().all(|&port| {
                let info: String = self.node_query(port, redis::cmd("CLUSTER").arg("INFO"));
                info.contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private cluster never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `sh` watching this process: once it is gone, kills the servers and removes the
    /// directory.
    fn watch_parent(&self) {
        let pids: Vec<String> = self.children.iter().map(|c| c.id().to_string()).collect();
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
            parent = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

/// Waits until `redis-server` on `port` answers `PING`.
fn wait_answers(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
    loop {
        let ready = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
        if ready.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "cluster node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A local port where nothing listens, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for child in self
            .children
            .iter_mut()
            .chain(self.replicas.iter_mut().map(|(_, c)| c))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
