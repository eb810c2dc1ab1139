//! Test support: a real S3-compatible server (`s3s-fs`, installed by `.ci/s3s`) that a test
//! starts on an address of its choosing and stops when the handle drops.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

/// The access key the test server accepts.
pub const ACCESS_KEY: &str = "weir-test";
/// The secret key the test server accepts.
pub const SECRET_KEY: &str = "weir-test-secret";

/// A running `s3s-fs` server over a folder.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://HOST:PORT` (`127.0.0.1` for a server on every address).
    pub endpoint: String,
    /// The port it listens on.
    pub port: u16,
    /// The folder that holds the buckets (one sub-folder each).
    pub root: PathBuf,
}

impl S3Server {
    /// Starts the server on `host` (an address of this machine: `127.0.0.1`, or
    /// `0.0.0.0` so that network namespaces reach it over their veth links) over `root`. Panics, saying how to
    /// install it, when `WEIR_S3S_FS` does not name the binary.
    pub fn start(host: Ipv4Addr, root: &Path) -> S3Server {
        let bin = std::env::var("WEIR_S3S_FS").unwrap_or_else(|_| {
            panic!(
                "this test needs a real S3-compatible server: run `eval \"$(.ci/s3s)\"` (it \
                 builds s3s-fs once and sets WEIR_S3S_FS), then run the tests again"
            )
        });
        std::fs::create_dir_all(root).expect("create the S3 server's folder");
        let port = TcpListener::bind((host, 0))
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let child = Command::new(&bin)
            .arg("--host")
            .arg(host.to_string())
            .arg("--port")
            .arg(port.to_string())
            .arg("--access-key")
            .arg(ACCESS_KEY)
            .arg("--secret-key")
            .arg(SECRET_KEY)
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let reach = if host.is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            host
        };
        let mut server = S3Server {
            child,
            port,
            endpoint: format!("http://{reach}:{port}"),
            root: root.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((reach, port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("s3s-fs exited at start ({status}); is port {port} free?");
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {} within 20 s",
                server.endpoint
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Creates a bucket (s3s-fs keeps each bucket as a folder).
    pub fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("create the bucket's folder");
    }

    /// An object store client for a bucket.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .with_bucket_name(bucket)
                .build()
                .expect("configure the S3 client"),
        )
    }

    /// The variables that make [`crate::SharedDataset::open`] of an `s3://` location (in this
    /// process's children) talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_at(&self.endpoint)
    }

    /// [`S3Server::env`] for a process that reaches the server at another address (a network
    /// namespace, over its link): `endpoint` is `http://ADDRESS:PORT`.
    pub fn env_at(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", endpoint.to_owned()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
