//! Test support: a fresh PostgreSQL database per test, and a PostgreSQL server of a test's
//! own (to stop and start under running agents).
//!
//! The server is `CRONFLEET_TEST_DATABASE_URL` (any database on it; the tests create their
//! own), else `postgres://postgres@127.0.0.1:5432/postgres` when it answers, else a
//! throwaway server of the test process (`initdb` into a temporary directory, on a free
//! port) when PostgreSQL's server programs are installed. Without any, the PostgreSQL tests
//! are skipped, except under CI (`CI` set), where they fail: `.ci/run` installs and starts
//! PostgreSQL when the machine has none.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{any::AnyPoolOptions, Executor};

/// A database made for one test, dropped by [`TestDb::drop_database`].
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

/// Without `CRONFLEET_TEST_DATABASE_URL`: the server on 127.0.0.1:5432 if one answers there,
/// else a server of this test process's own (when PostgreSQL's server programs are
/// installed), started once and stopped when the process exits.
async fn default_server() -> String {
    const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    static OWN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(url) = OWN.get() {
        return url.clone().unwrap_or_else(|| LOCAL.to_owned());
    }
    let local = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect(LOCAL)
        .await;
    if let Ok(pool) = local {
        pool.close().await;
        return LOCAL.to_owned();
    }
    let own = OWN.get_or_init(|| {
        pg_bin()?;
        // The server lives as long as this thread: as long as the process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = PgServer::start("shared");
            let _ = tx.send(server.as_ref().map(|s| s.url.clone()));
            let _keep = server;
            loop {
                std::thread::park();
            }
        });
        rx.recv().ok().flatten()
    });
    own.clone().unwrap_or_else(|| LOCAL.to_owned())
}

/// The server's URL with `database` instead of its own.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &base[..host_end])
}

impl TestDb {
    /// A fresh, empty database, or `None` (with a message) when no server can be reached
    /// outside CI.
    ///
    /// # Panics
    /// Under CI, when no server can be reached.
    pub async fn create(label: &str) -> Option<TestDb> {
        static N: AtomicU32 = AtomicU32::new(0);
        sqlx::any::install_default_drivers();
        let server = match std::env::var("CRONFLEET_TEST_DATABASE_URL") {
            Ok(url) => url,
            Err(_) => default_server().await,
        };
        let admin = match AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&server)
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI needs PostgreSQL at {server}: {e} (.ci/run installs and starts it)"
                );
                eprintln!(
                    "skipped: no PostgreSQL at {server} ({e}); set CRONFLEET_TEST_DATABASE_URL"
                );
                return None;
            }
        };
        let name = format!(
            "cronfleet_test_{}_{}_{}",
            label,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        Some(TestDb { url: with_database(&server, &name), server, name })
    }

    /// Drops the database (connections to it are closed first).
    pub async fn drop_database(self) {
        let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(&self.server).await else {
            return;
        };
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await;
        admin.close().await;
    }
}

/// A PostgreSQL server of one test's own: `initdb` into a temporary directory, `postgres` on
/// a free port of 127.0.0.1 (trust authentication), so the test can stop and start it. Under
/// root, the server runs as the `postgres` user (PostgreSQL refuses root).
#[derive(Debug)]
pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    /// Its port.
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    child: Option<std::process::Child>,
}

/// The directory of PostgreSQL's server programs: `CRONFLEET_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian), else wherever `initdb` is on the `PATH`.
fn pg_bin() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("CRONFLEET_TEST_PG_BIN") {
        return Some(dir.into());
    }
    let mut debian: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").exists()))
}

impl PgServer {
    /// Starts a fresh server, or `None` (with a message) when PostgreSQL's server programs are
    /// not installed, outside CI.
    ///
    /// # Panics
    /// Under CI without the programs, or when the server does not start.
    pub fn start(label: &str) -> Option<PgServer> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs PostgreSQL's server programs (initdb): .ci/run installs them"
            );
            eprintln!(
                "skipped: no initdb (install PostgreSQL's server, or set CRONFLEET_TEST_PG_BIN)"
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!("cronfleet-pg-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Servers of test processes that have exited left their directories.
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("cronfleet-pg-").and_then(|r| r.rsplit('-').next());
            if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        std::fs::create_dir_all(dir.join("data")).expect("server directory");
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .expect("under root, a postgres user runs the server");
            for d in [dir.clone(), dir.join("data")] {
                std::os::unix::fs::chown(&d, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .expect("chown");
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let data = dir.join("data");
        let status = Self::as_server_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let mut server = PgServer {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir,
            bin,
            child: None,
        };
        server.start_again();
        Some(server)
    }

    fn as_server_user(program: &std::path::Path) -> std::process::Command {
        if nix::unistd::geteuid().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    }

    /// Starts the server (again, on the same port and data), and waits until it answers.
    ///
    /// # Panics
    /// When it does not answer within 30 s.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log");
        let mut command = std::process::Command::new(self.bin.join("postgres"));
        let user = nix::unistd::geteuid()
            .is_root()
            .then(|| nix::unistd::User::from_name("postgres").ok().flatten())
            .flatten()
            .map(|u| (u.uid.as_raw(), u.gid.as_raw()));
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if let Some((uid, gid)) = user {
                    // PostgreSQL refuses root; then (credentials changed) the death signal.
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // The server stops (fast shutdown) when the thread that started it ends.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        let child = command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=300"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = std::process::Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "postgres did not start: see {}",
                self.dir.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
