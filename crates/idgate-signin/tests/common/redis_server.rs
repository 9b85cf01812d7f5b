//! A real `redis-server` for the tests (Debian's package, which `.ci/run` installs when missing), on a loopback port
//! the test picks, without persistence; a minimal RESP client to look inside it; and [`FaultProxy`], a TCP proxy
//! between the app and Redis that can refuse connections or swallow them, to play Redis down or unreachable.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A `redis-server` child process; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` with `extra` arguments. `None` (with a message) when it is not installed and this is not
    /// CI; in CI (`CI` set) a missing server fails the test, since `.ci/run` installs it.
    pub fn start(extra: &[&str]) -> Option<Self> {
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        Self::start_with(&|port| {
            let mut args = vec!["--port".to_owned(), port.to_string()];
            args.extend(extra.iter().cloned());
            args
        })
    }

    /// Starts `redis-server` serving TLS only, on its port, with this certificate and key (PEM files).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Option<Self> {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        Self::start_with(&|port| {
            let port = port.to_string();
            [
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-auth-clients",
                "no",
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
        })
    }

    /// Starts `redis-server` with the arguments `args` makes for the port picked.
    fn start_with(args: &dyn Fn(u16) -> Vec<String>) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is missing: .ci/run installs Debian's redis-server"
            );
            eprintln!(
                "SKIPPED: redis-server is not installed (apt-get install redis-server; .ci/run does it)"
            );
            return None;
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir =
                std::env::temp_dir().join(format!("idgate-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(args(port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            let mut server = Self { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(server);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.child.kill();
        }
        panic!("redis-server did not start");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs one command as `auth` (user, password) when given; the reply, rendered as text.
    pub fn command_as(&self, auth: Option<(&str, &str)>, args: &[&str]) -> Reply {
        let mut stream = TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        if let Some((user, password)) = auth {
            send(&mut stream, &["AUTH", user, password]);
            assert_eq!(read(&mut reader), Reply::Status("OK".into()));
        }
        send(&mut stream, args);
        read(&mut reader)
    }

    pub fn command(&self, args: &[&str]) -> Reply {
        self.command_as(None, args)
    }

    /// The keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&["KEYS", pattern]) {
            Reply::Array(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    Reply::Bulk(Some(b)) => Some(String::from_utf8(b).unwrap()),
                    _ => None,
                })
                .collect(),
            other => panic!("KEYS answered {other:?}"),
        }
    }

    /// The value of `key`, as text.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.command(&["GET", key]) {
            Reply::Bulk(b) => b.map(|b| String::from_utf8(b).unwrap()),
            other => panic!("GET answered {other:?}"),
        }
    }

    /// The seconds `key` has to live (-1: no expiry, -2: no key).
    pub fn ttl(&self, key: &str) -> i64 {
        match self.command(&["TTL", key]) {
            Reply::Integer(n) => n,
            other => panic!("TTL answered {other:?}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RESP reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Self>),
}

fn send(stream: &mut TcpStream, args: &[&str]) {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out).unwrap();
}

fn read(reader: &mut BufReader<TcpStream>) -> Reply {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(rest.parse().unwrap()),
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n < 0 {
                return Reply::Bulk(None);
            }
            let mut buf = vec![0; usize::try_from(n).unwrap() + 2];
            reader.read_exact(&mut buf).unwrap();
            buf.truncate(buf.len() - 2);
            Reply::Bulk(Some(buf))
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            Reply::Array((0..n.max(0)).map(|_| read(reader)).collect())
        }
        other => panic!("unexpected RESP reply {other:?}{rest}"),
    }
}

/// What [`FaultProxy`] does with the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Forwards both ways.
    None = 0,
    /// Redis is down: connections are closed (new ones at once, open ones at their next byte).
    Down = 1,
    /// Redis is unreachable: connections are accepted and nothing ever comes back.
    Silent = 2,
}

/// A TCP proxy in front of a Redis server whose [`Fault`] the test switches.
pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: Arc<AtomicU8>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let shared = fault.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(pipe(client, upstream, shared.clone()));
            }
        });
        Self { addr, fault }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

fn current(fault: &AtomicU8) -> Fault {
    match fault.load(Ordering::SeqCst) {
        1 => Fault::Down,
        2 => Fault::Silent,
        _ => Fault::None,
    }
}

async fn pipe(mut client: tokio::net::TcpStream, upstream: SocketAddr, fault: Arc<AtomicU8>) {
    match current(&fault) {
        Fault::Down => return,
        Fault::Silent => return swallow(client).await,
        Fault::None => {}
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut a, mut b) = ([0u8; 16 * 1024], [0u8; 16 * 1024]);
    loop {
        // Checked at every byte either way, and every 50 ms, so a switch reaches open connections too.
        tokio::select! {
            n = client.read(&mut a) => {
                let Ok(n @ 1..) = n else { return };
                match current(&fault) {
                    Fault::None => if server.write_all(&a[..n]).await.is_err() { return },
                    Fault::Down => return,
                    Fault::Silent => return swallow(client).await,
                }
            }
            n = server.read(&mut b) => {
                let Ok(n @ 1..) = n else { return };
                if current(&fault) != Fault::None { continue; }
                if client.write_all(&b[..n]).await.is_err() { return }
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if current(&fault) == Fault::Down { return }
            }
        }
    }
}

/// Reads and drops everything until the client gives up.
async fn swallow(mut client: tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(1..) = client.read(&mut buf).await {}
}
