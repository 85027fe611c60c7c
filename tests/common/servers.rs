//! Real PostgreSQL and NATS servers for the sink tests and the drain benchmark: each in its
//! own temp dir, on a free port of 127.0.0.1, stopped when dropped.
//!
//! A server that cannot be found fails the test with what to install; it never skips.
//! PostgreSQL refuses to run as root, so as root (CI, this project's machines) `initdb` and
//! `pg_ctl` run through `runuser` as the `postgres` user that Debian's package creates (or
//! `nobody`), with the temp dir handed over to that user; as anyone else they run directly.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `id -u`/`id -g` of `user`, if it exists.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Gives `dir` and everything below it to `uid:gid`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chown_tree(&path, uid, gid);
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: `$CEN_TEST_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH), else PATH.
pub fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CEN_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(dir) = find_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        return dir;
    }
    panic!(
        "PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/<version>/bin or on PATH: \
         install Debian's `postgresql` package (`apt-get install postgresql`; `bash .ci/run` does it), \
         or set CEN_TEST_PG_BINDIR to the directory that holds them"
    );
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A PostgreSQL cluster of its own, trust authentication, user `postgres`.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Whom to run the server programs as (`runuser -u`), when running as root.
    run_as: Option<String>,
    pub port: u16,
    running: bool,
    /// More `-c name=value` settings for the server.
    extra_options: String,
}

impl PgServer {
    /// Creates and starts a cluster.
    pub fn start() -> PgServer {
        let mut pg = PgServer::init();
        pg.start_again();
        pg
    }

    /// Creates a cluster without starting it (a database that is down).
    pub fn init() -> PgServer {
        let bin = pg_bindir();
        let dir = tempfile::tempdir().unwrap();
        let run_as = if is_root() {
            let user = ["postgres", "nobody"].into_iter().find(|u| ids_of(u).is_some()).unwrap_or_else(|| {
                panic!("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")
            });
            let (uid, gid) = ids_of(user).unwrap();
            chown_tree(dir.path(), uid, gid);
            Some(user.to_owned())
        } else {
            None
        };
        let pg = PgServer { dir, bin, run_as, port: free_port(), running: false, extra_options: String::new() };
        let out = pg
            .command("initdb")
            .args(["-D", "data", "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", pg.bin.join("initdb").display()));
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut c = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        c.current_dir(self.dir.path()).stdin(Stdio::null());
        c
    }

    /// Starts the server (again) on its port; waits until it accepts connections.
    pub fn start_again(&mut self) {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                // The port was taken between choosing and binding it.
                self.port = free_port();
            }
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1{}",
                self.port,
                self.dir.path().display(),
                self.extra_options
            );
            let out = self
                .command("pg_ctl")
                .args(["-D", "data", "-l", "server.log", "-w", "-t", "60", "-o", &options, "start"])
                .output()
                .unwrap();
            if out.status.success() {
                self.running = true;
                return;
            }
            last = format!(
                "{}{}\n--- server.log\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(20)
            );
        }
        panic!("PostgreSQL did not start:\n{last}");
    }

    /// Makes the next start offer TLS with this certificate and key (PEM). PostgreSQL
    /// wants the key file owned by the server's user and readable by it alone.
    pub fn enable_tls(&mut self, cert_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        let (cert, key) = (self.dir.path().join("server.crt"), self.dir.path().join("server.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = self.run_as.as_deref().and_then(ids_of) {
            for f in [&cert, &key] {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
            }
        }
        self.extra_options =
            format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display());
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        let out = self.command("pg_ctl").args(["-D", "data", "-m", "fast", "-w", "stop"]).output().unwrap();
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
        self.running = false;
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A key=value connection string for database `postgres` as user `postgres`.
    pub fn dsn(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable", self.port)
    }

    /// A client for the test's own queries.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL on port {}: {e}", self.port));
        tokio::spawn(connection);
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.command("pg_ctl").args(["-D", "data", "-m", "immediate", "-w", "stop"]).output();
        }
    }
}

/// `nats-server`: `$CEN_TEST_NATS_SERVER`, PATH, or /usr/sbin (Debian's place, off a normal
/// user's PATH).
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CEN_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    if let Some(p) = find_on_path("nats-server") {
        return p;
    }
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "nats-server not found on PATH or in /usr/sbin: install Debian's `nats-server` package \
         (`apt-get install nats-server`; `bash .ci/run` does it), or set CEN_TEST_NATS_SERVER to the program"
    );
}

/// A NATS server with JetStream, its store in a temp dir.
pub struct NatsServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server; waits until it accepts connections.
    pub fn start() -> NatsServer {
        let mut nats =
            NatsServer { dir: tempfile::tempdir().unwrap(), bin: nats_server_bin(), port: free_port(), child: None };
        nats.start_again();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("nats.log")).unwrap();
        let store = self.dir.path().join("jetstream");
        let mut child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let until = Instant::now() + Duration::from_secs(20);
        while !accepts(self.port) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("nats-server exited ({status}):\n{}", self.log_tail(20));
            }
            assert!(Instant::now() < until, "nats-server does not accept connections:\n{}", self.log_tail(20));
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// Stops the server (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A JetStream context for the test's own requests.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.url()).await.unwrap();
        async_nats::jetstream::new(client)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
