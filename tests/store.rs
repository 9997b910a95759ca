//! Runs kept in object storage, against a real S3 server on loopback: s3s-fs 0.14.1
//! (installed by scripts/test into target/s3s-fs), objects put with curl's own SigV4
//! signing. Nothing here mocks the client: camwatch talks S3 through `object_store`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::watch::{Watch, demo_checkpoint, run_dir, str_of};

const KEY: &str = "camwatch-test-key";
const SECRET: &str = "camwatch-test-secret-do-not-print";

/// An s3s-fs server on a free loopback port, serving `root` (a folder per bucket).
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl Server {
    fn start(root: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Server::on(root, port)
    }

    fn on(root: &Path, port: u16) -> Server {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/s3s-fs/bin/s3s-fs");
        assert!(
            binary.exists(),
            "{}: missing; scripts/test installs it (cargo install s3s-fs --version 0.14.1)",
            binary.display()
        );
        std::fs::create_dir_all(root.join("bucket")).unwrap();
        let child = listening(
            Command::new(binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", KEY, "--secret-key", SECRET])
                .arg(root),
            port,
            Duration::from_secs(20),
        );
        Server {
            child,
            port,
            root: root.to_path_buf(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// PUTs `data` as `bucket/key`, signed by curl (`--aws-sigv4`).
    fn put(&self, key: &str, data: &[u8]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), data).unwrap();
        let sha = sha256_hex(data);
        let status = Command::new("curl")
            .args(["-sf", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{KEY}:{SECRET}")])
            .args(["-H", &format!("x-amz-content-sha256: {sha}")])
            .arg("-T")
            .arg(file.path())
            .arg(format!("{}/bucket/{key}", self.endpoint()))
            .status()
            .expect("curl runs");
        assert!(status.success(), "PUT {key}");
    }

    fn stop(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.root.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SHA-256 in hex, by the `sha256sum` every Linux has (S3 signs the payload's hash).
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn env(endpoint: &str, secret: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT".into(), endpoint.into()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
    ]
}

fn watch(url: &str, cache: &Path, endpoint: &str, secret: &str) -> Watch {
    let mut command = Watch::command(Path::new(url), &["--poll", "0.5"]);
    command.arg("--cache").arg(cache);
    command.envs(env(endpoint, secret));
    Watch::spawn(command)
}

#[test]
fn follows_a_run_in_s3_and_restarts_from_its_history() {
    let root = run_dir("store-follow");
    let server = Server::start(&root.join("s3"));
    let cache = root.join("cache");
    for epoch in [1, 2] {
        server.put(
            &format!("run/epoch_{epoch}.pdparams"),
            &demo_checkpoint(epoch),
        );
    }
    // Not checkpoints: ignored.
    server.put("run/notes.txt", b"lr 0.1");
    server.put("run/.hidden/epoch_9.pdparams", &demo_checkpoint(3));

    let url = "s3://bucket/run/";
    let watch = watch(url, &cache, &server.endpoint(), SECRET);
    let mut lines = watch.take(2);
    server.put("run/epoch_3.pdparams", &demo_checkpoint(3));
    lines.push(watch.next());
    for (line, epoch) in lines.iter().zip(1..) {
        assert_eq!(str_of(line, "status"), "ok", "{line}");
        assert_eq!(str_of(line, "path"), format!("{url}epoch_{epoch}.pdparams"));
        assert!(!str_of(line, "etag").is_empty(), "{line}");
        assert_eq!(line["epoch"], epoch);
    }
    watch.expect_quiet(Duration::from_secs(3));
    let stderr = watch.stderr.lock().unwrap().clone();
    assert!(watch.interrupt().success());
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(
        stderr.contains("AWS_ACCESS_KEY_ID from the environment"),
        "{stderr}"
    );

    // The history is found from the URL, without the store.
    let dump = common::watch::history_json(Path::new(url), &["--cache", cache.to_str().unwrap()]);
    let checkpoints = dump["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 3);
    for c in checkpoints {
        assert!(str_of(c, "path").starts_with(url), "named by the URL: {c}");
    }
    // So does `export` (it once looked for the URL as a folder).
    let out = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["export", url, "--cache"])
        .arg(&cache)
        .arg("--samples")
        .arg(common::watch::root().join("samples"))
        .arg("--tensorboard")
        .arg(root.join("tb"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        said.starts_with(&format!("camwatch export: {url} -> "))
            && said.contains("at 3 checkpoint(s)"),
        "{said}"
    );

    // A restart computes nothing, and an object deleted from the store keeps its maps.
    std::fs::remove_file(root.join("s3/bucket/run/epoch_1.pdparams")).unwrap();
    let again = watch_again(url, &cache, &server);
    let replayed = again.take(3);
    assert!(replayed.iter().all(|l| str_of(l, "source") == "history"));
    again.expect_quiet(Duration::from_secs(3));
    assert!(again.interrupt().success());
}

fn watch_again(url: &str, cache: &Path, server: &Server) -> Watch {
    watch(url, cache, &server.endpoint(), SECRET)
}

#[test]
fn a_store_down_at_start_is_waited_for() {
    let root = run_dir("store-down");
    let server = Server::start(&root.join("s3"));
    server.put("run/epoch_1.pdparams", &demo_checkpoint(1));
    let (endpoint, port) = (server.endpoint(), server.port);
    let s3 = server.stop();

    let watch = watch("s3://bucket/run/", &root.join("cache"), &endpoint, SECRET);
    let started = Instant::now();
    while !watch.stderr.lock().unwrap().contains("trying again") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no word of the store"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _server = Server::on(&s3, port);
    let line = watch.next();
    assert_eq!(str_of(&line, "status"), "ok", "{line}");
    let stderr = watch.stderr.lock().unwrap().clone();
    let complaints = stderr
        .lines()
        .filter(|l| l.contains("trying again"))
        .count();
    assert_eq!(complaints, 1, "said once: {stderr}");
    assert!(stderr.contains("reachable again"), "{stderr}");
    assert!(watch.interrupt().success());
}

#[test]
fn refused_credentials_are_named_not_printed() {
    let root = run_dir("store-denied");
    let server = Server::start(&root.join("s3"));
    server.put("run/epoch_1.pdparams", &demo_checkpoint(1));
    let wrong = "a-wrong-secret-that-must-not-appear";
    let watch = watch(
        "s3://bucket/run/",
        &root.join("cache"),
        &server.endpoint(),
        wrong,
    );
    let started = Instant::now();
    let line = loop {
        let stderr = watch.stderr.lock().unwrap().clone();
        if let Some(line) = stderr.lines().find(|l| l.contains("trying again")) {
            break line.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no error: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        line.contains("s3://bucket/run/")
            && line.contains("bucket bucket")
            && line.contains("AWS_ACCESS_KEY_ID from the environment"),
        "{line}"
    );
    let stderr = watch.stderr.lock().unwrap().clone();
    assert!(
        !stderr.contains(wrong) && !stderr.contains(SECRET),
        "{stderr}"
    );
    assert!(watch.interrupt().success());
}

/// What a [`proxy`] does to its first connections.
#[derive(Clone, Copy)]
enum Fault {
    /// Cuts them after this many bytes of response.
    CutAfter(usize),
    /// Answers `503 Slow Down`, as S3 does when it throttles, and closes them.
    SlowDown,
}

/// A loopback proxy in front of the server that does `fault` to its first `faulty`
/// connections and passes the others through. Its port, and the count of connections it
/// took.
fn proxy(
    upstream: u16,
    faulty: usize,
    fault: Fault,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let connections = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for mut client in listener.incoming().map_while(Result::ok) {
            let faulted = count.fetch_add(1, Ordering::Relaxed) < faulty;
            if faulted && let Fault::SlowDown = fault {
                std::thread::spawn(move || {
                    // The request's head, then the answer S3 gives under load.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n")
                        && client.read(&mut byte).is_ok_and(|n| n == 1)
                    {
                        head.push(byte[0]);
                    }
                    let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
                continue;
            }
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let after = match fault {
                Fault::CutAfter(bytes) if faulted => bytes,
                _ => usize::MAX,
            };
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut server_in, mut client_out) = (server, client);
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut buffer = vec![0u8; 64 << 10];
                loop {
                    let n = match server_in.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(after.saturating_sub(sent)),
                    };
                    if n == 0 || client_out.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = client_out.shutdown(std::net::Shutdown::Both);
                let _ = server_in.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (port, connections)
}

/// A store that throttles (503 Slow Down) is asked again after a pause, and nothing is
/// said while it answers in the end.
#[test]
fn a_throttling_store_is_backed_off_from() {
    let root = run_dir("store-throttled");
    let server = Server::start(&root.join("s3"));
    server.put("run/epoch_1.pdparams", &demo_checkpoint(1));
    let (port, connections) = proxy(server.port, 4, Fault::SlowDown);
    let watch = watch(
        "s3://bucket/run/",
        &root.join("cache"),
        &format!("http://127.0.0.1:{port}"),
        SECRET,
    );
    let line = watch.next();
    assert_eq!(str_of(&line, "status"), "ok", "{line}");
    let taken = connections.load(std::sync::atomic::Ordering::Relaxed);
    assert!(taken > 4, "asked again after the 503s: {taken}");
    let stderr = watch.stderr.lock().unwrap().clone();
    assert!(!stderr.contains("trying again"), "{stderr}");
    assert!(watch.interrupt().success());
}

/// A 95 MB checkpoint (six 16 MiB ranges) through connections that drop mid-transfer:
/// the ranges are asked again, and the file used is the object, byte for byte.
#[test]
fn connections_cut_mid_download_are_resumed_and_nothing_half_read_is_used() {
    let root = run_dir("store-cut");
    let server = Server::start(&root.join("s3"));
    let data = std::fs::read(common::fixtures().join("paddle_r50.p4.pdparams")).unwrap();
    server.put("run/epoch_1.pdparams", &data);
    let (proxy, connections) = proxy(server.port, 6, Fault::CutAfter(3 << 20));
    let watch = watch(
        "s3://bucket/run/",
        &root.join("cache"),
        &format!("http://127.0.0.1:{proxy}"),
        SECRET,
    );
    let line = watch.next();
    assert_eq!(str_of(&line, "status"), "ok", "{line}");
    assert_eq!(
        str_of(&line, "hash"),
        camwatch::monitor::content_hash(&data)
    );
    let taken = connections.load(std::sync::atomic::Ordering::Relaxed);
    assert!(taken > 6, "the cut connections were replaced: {taken}");
    assert!(watch.interrupt().success());
}

/// `render --checkpoint URL` and `check URL` read a store too.
#[test]
fn render_and_check_take_urls() {
    let root = run_dir("store-render");
    let server = Server::start(&root.join("s3"));
    for epoch in [1, 2] {
        server.put(
            &format!("run/epoch_{epoch}.pdparams"),
            &demo_checkpoint(epoch),
        );
    }
    let samples = common::watch::root().join("samples");
    let camwatch = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_camwatch"))
            .args(args)
            .arg("--samples")
            .arg(&samples)
            .arg("--cache")
            .arg(root.join("cache"))
            .args(["--device", "cpu"])
            .envs(env(&server.endpoint(), SECRET))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = root.join("render");
    camwatch(&[
        "render",
        "--checkpoint",
        "s3://bucket/run/epoch_2.pdparams",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["checkpoint"], "s3://bucket/run/epoch_2.pdparams");
    let checked = camwatch(&["check", "s3://bucket/run/", "--min-box-energy", "0"]);
    assert!(checked.contains("(epoch 2)"), "the latest: {checked}");
}

/// `--runs`: each subfolder (or sub-prefix) holding a checkpoint is a run, and a run
/// that starts later joins, in a folder and in a store alike.
#[test]
fn a_sweeps_runs_are_found_and_later_ones_join() {
    use std::collections::BTreeSet;
    let root = run_dir("store-sweep");
    let local = root.join("local");
    for run in ["lr0.1", "lr0.01"] {
        std::fs::create_dir_all(local.join(run)).unwrap();
        std::fs::write(local.join(run).join("epoch_1.pdparams"), demo_checkpoint(1)).unwrap();
    }
    std::fs::create_dir_all(local.join("empty")).unwrap();
    let server = Server::start(&root.join("s3"));
    server.put("sweep/a/epoch_1.pdparams", &demo_checkpoint(1));
    server.put("sweep/notes/readme.txt", b"no checkpoint here");

    let mut command = Watch::command(&local, &["--runs", "--poll", "0.5", "s3://bucket/sweep/"]);
    command.arg("--cache").arg(root.join("cache"));
    command.envs(env(&server.endpoint(), SECRET));
    let watch = Watch::spawn(command);
    let runs = |lines: Vec<serde_json::Value>| -> BTreeSet<String> {
        lines.iter().map(|l| str_of(l, "run").to_string()).collect()
    };
    let first = runs(watch.take(3));
    let expected: BTreeSet<String> = [
        local.join("lr0.01").display().to_string(),
        local.join("lr0.1").display().to_string(),
        "s3://bucket/sweep/a/".to_string(),
    ]
    .into();
    assert_eq!(first, expected);
    // Runs that start later join.
    std::fs::create_dir_all(local.join("lr1")).unwrap();
    std::fs::write(local.join("lr1/epoch_2.pdparams"), demo_checkpoint(2)).unwrap();
    server.put("sweep/b/epoch_3.pdparams", &demo_checkpoint(3));
    let later = runs(watch.take(2));
    let expected: BTreeSet<String> = [
        local.join("lr1").display().to_string(),
        "s3://bucket/sweep/b/".to_string(),
    ]
    .into();
    assert_eq!(later, expected);
    assert!(watch.interrupt().success());
}

/// A server started quietly by `command`, once it listens on loopback `port` (within
/// `patience`).
fn listening(command: &mut Command, port: u16, patience: Duration) -> Child {
    let name = command.get_program().to_string_lossy().into_owned();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < patience, "{name} did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Azurite, Azure's own storage emulator (installed by scripts/test into target/azurite),
/// on a free loopback port, serving plain HTTP, or HTTPS with `tls` (certificate, key).
struct Azurite {
    child: Child,
    endpoint: String,
    /// The CA the Python client trusts (HTTPS only).
    ca: Option<PathBuf>,
    root: PathBuf,
}

/// Azurite's well-known development account key (public, the same in every install).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    fn start(root: &Path, tls: Option<&PrivateCa>) -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let azurite = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/azurite/node_modules/.bin/azurite-blob");
        assert!(
            azurite.exists(),
            "{}: missing; scripts/test installs it",
            azurite.display()
        );
        let mut command = Command::new(&azurite);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--skipApiVersionCheck", "--silent", "--location"])
            .arg(root.join("azurite"));
        if let Some(ca) = tls {
            command
                .arg("--cert")
                .arg(&ca.cert)
                .arg("--key")
                .arg(&ca.key);
        }
        let child = listening(&mut command, port, Duration::from_secs(30));
        let scheme = if tls.is_some() { "https" } else { "http" };
        Azurite {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            ca: tls.map(|ca| ca.ca.clone()),
            root: root.to_path_buf(),
        }
    }

    /// Uploads the demo checkpoint of `epoch` as `runs/exp/epoch_N.pdparams` with Azure's
    /// Python client, making the container first when `create`.
    fn upload(&self, epoch: u32, create: bool) {
        let file = self.root.join(format!("epoch_{epoch}.pdparams"));
        std::fs::write(&file, demo_checkpoint(epoch)).unwrap();
        let verify = match &self.ca {
            Some(ca) => format!("'{}'", ca.display()),
            None => "True".into(),
        };
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\n\
             s = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol={scheme};\
             AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};\
             BlobEndpoint={endpoint}/devstoreaccount1;', connection_verify={verify})\n\
             c = s.create_container('runs') if {create} else s.get_container_client('runs')\n\
             c.upload_blob('exp/epoch_{epoch}.pdparams', open('{}', 'rb'))\n",
            file.display(),
            scheme = if self.ca.is_some() { "https" } else { "http" },
            endpoint = self.endpoint,
            create = if create { "True" } else { "False" },
        );
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let status = Command::new(python).args(["-c", &script]).status().unwrap();
        assert!(status.success(), "upload of epoch {epoch}");
    }

    /// The environment that points camwatch's `az://` at this emulator.
    fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.as_str()),
        ]
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same for Azure Blob Storage (`az://`), against Azurite, blobs uploaded by Azure's
/// Python client.
#[test]
fn follows_a_run_in_azure_blob_storage() {
    let root = run_dir("store-azure");
    let azurite = Azurite::start(&root, None);
    let upload = |epoch: u32, create: bool| azurite.upload(epoch, create);
    upload(1, true);
    let mut command = Watch::command(Path::new("az://runs/exp/"), &["--poll", "0.5"]);
    command.arg("--cache").arg(root.join("cache"));
    command.envs(azurite.env());
    let watch = Watch::spawn(command);
    let first = watch.next();
    upload(2, false);
    let second = watch.next();
    for (line, epoch) in [(&first, 1), (&second, 2)] {
        assert_eq!(str_of(line, "status"), "ok", "{line}");
        assert_eq!(
            str_of(line, "path"),
            format!("az://runs/exp/epoch_{epoch}.pdparams")
        );
        assert!(!str_of(line, "etag").is_empty(), "{line}");
    }
    assert!(watch.interrupt().success());

    // With a token that may only read and list (a SAS, as a viewer's team would hand
    // out), `--publish` says once that it may not write, and the results go on here.
    let script = format!(
        "import datetime\n\
         from azure.storage.blob import generate_container_sas, ContainerSasPermissions\n\
         print(generate_container_sas('devstoreaccount1', 'runs', account_key='{AZURITE_KEY}', \
         permission=ContainerSasPermissions(read=True, list=True), \
         expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))\n"
    );
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let sas = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(sas.status.success(), "{sas:?}");
    let sas = String::from_utf8(sas.stdout).unwrap().trim().to_string();
    let mut command = Watch::command(Path::new("az://runs/exp/"), &["--poll", "0.5", "--publish"]);
    command.arg("--cache").arg(root.join("cache-read-only"));
    command.envs(azurite.env());
    command.env("AZURE_STORAGE_SAS_KEY", &sas);
    let reader = Watch::spawn(command);
    for line in reader.take(2) {
        assert_eq!(str_of(&line, "status"), "ok", "{line}");
        assert_eq!(str_of(&line, "source"), "computed", "{line}");
    }
    reader.expect_quiet(Duration::from_secs(2));
    let stderr = reader.stderr.lock().unwrap().clone();
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("results are kept here only"))
        .collect();
    assert_eq!(refused.len(), 1, "{stderr}");
    assert!(
        refused[0].contains("az://runs/exp/.camwatch/results/")
            && refused[0].contains("may not be written"),
        "{stderr}"
    );
    assert!(reader.interrupt().success());
}

/// A private certificate authority, as a company's MinIO or Azurite would have, made by
/// openssl in `dir`: the CA's certificate, and a server certificate it signed for
/// 127.0.0.1 and localhost, with its key.
struct PrivateCa {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// `openssl ARGS` in `dir`: what it printed.
fn openssl(dir: &Path, args: &str) -> String {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrivateCa {
    fn make(dir: &Path) -> PrivateCa {
        let openssl = |args: &str| openssl(dir, args);
        let new_key = "-nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
        openssl(&format!(
            "req -x509 -days 2 -subj /CN=camwatch-test-ca {new_key} -keyout ca.key -out ca.pem"
        ));
        openssl(&format!(
            "req -subj /CN=127.0.0.1 {new_key} -keyout server.key -out server.csr"
        ));
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.pem",
        );
        PrivateCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// `az://` over HTTPS, from Azurite with a certificate of a private CA: camwatch refuses
/// the server in one line that says why until it is told to trust that CA
/// (`SSL_CERT_FILE`, as docs/stores.md says), and then reads the run.
#[test]
fn https_trusts_a_private_ca_only_when_told() {
    let root = run_dir("store-https");
    let ca = PrivateCa::make(&root);
    let azurite = Azurite::start(&root, Some(&ca));
    azurite.upload(1, true);
    let samples = common::watch::root().join("samples");
    let check = |ca_file: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_camwatch"));
        command
            .args(["check", "az://runs/exp/", "--min-box-energy", "0"])
            .arg("--samples")
            .arg(&samples)
            .arg("--cache")
            .arg(root.join("cache"))
            .args(["--device", "cpu"])
            .envs(azurite.env())
            // The system's CAs alone unless the CA is given, whatever this machine's
            // environment says.
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        if let Some(file) = ca_file {
            command.env("SSL_CERT_FILE", file);
        }
        command.output().unwrap()
    };
    let refused = check(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("az://runs/exp/")
            && stderr.contains("invalid peer certificate: UnknownIssuer")
            && stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );
    let trusted = check(Some(&ca.ca));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert!(out.contains("(epoch 1)"), "{out}");
    // A file that holds no certificate (here the server's key) is named, not "builder
    // error".
    let wrong = check(Some(&ca.key));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!(
            "SSL_CERT_FILE={}: holds no PEM certificate",
            ca.key.display()
        )),
        "{stderr}"
    );
}

/// `gs://` with a service account's key: each request carries a token that camwatch
/// signed with the key (an RS256 JWT, by object_store's crypto provider), here checked by
/// openssl against the key's public half. No GCS emulator is at hand: a loopback
/// stand-in takes the request and refuses it.
#[test]
fn gcs_requests_carry_a_token_signed_with_the_service_accounts_key() {
    use base64::Engine;
    use std::io::{BufRead, BufReader, Write};
    let root = run_dir("store-gcs");
    let openssl = |args: &str| openssl(&root, args);
    openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem");
    openssl("pkey -in key.pem -pubout -out public.pem");
    let email = "camwatch-test@camwatch.iam.gserviceaccount.com";
    let account = serde_json::json!({
        "type": "service_account",
        "private_key": std::fs::read_to_string(root.join("key.pem")).unwrap(),
        "private_key_id": "camwatch-test-key",
        "client_email": email,
    });
    std::fs::write(root.join("account.json"), account.to_string()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heads, head) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_string());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = heads.send(lines);
        }
    });
    // `check` with the key named by `variable`: refused, in one line that names it.
    let refused = |variable: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_camwatch"))
            .args(["check", "gs://bucket/run/", "--min-box-energy", "0"])
            .arg("--samples")
            .arg(common::watch::root().join("samples"))
            .arg("--cache")
            .arg(root.join("cache"))
            .args(["--device", "cpu"])
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env(variable, root.join("account.json"))
            .env("GOOGLE_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("GOOGLE_ALLOW_HTTP", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("gs://bucket/run/: access denied")
                && stderr.contains(&format!("credentials: {variable}")),
            "{stderr}"
        );
    };
    refused("GOOGLE_APPLICATION_CREDENTIALS");

    let head = head.recv_timeout(Duration::from_secs(30)).unwrap();
    let token = head
        .iter()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("authorization: bearer ")
                .then(|| l["authorization: bearer ".len()..].to_string())
        })
        .unwrap_or_else(|| panic!("no bearer token: {head:?}"));
    let (message, signature) = token.rsplit_once('.').unwrap();
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part);
    let claims: serde_json::Value =
        serde_json::from_slice(&decode(message.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["iss"], email, "{claims}");
    std::fs::write(root.join("message"), message).unwrap();
    std::fs::write(root.join("signature"), decode(signature).unwrap()).unwrap();
    let verified = openssl("dgst -sha256 -verify public.pem -signature signature message");
    assert!(verified.contains("Verified OK"), "{verified}");
    // object_store's own variable for the key's file, which comes before the
    // application default credentials.
    refused("GOOGLE_SERVICE_ACCOUNT");
}

/// The next `n` checkpoint lines of `watch` (trust figures' `metrics` lines skipped).
fn checkpoint_lines(watch: &Watch, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let line = watch.next();
        if str_of(&line, "event") == "checkpoint" {
            lines.push(line);
        }
    }
    lines
}

/// The published objects of a run in the server's folder: (results, trust figures), by
/// name, in the one setting folder there.
fn published(run: &Path) -> (Vec<String>, Vec<String>) {
    let Ok(mut settings) = std::fs::read_dir(run.join(".camwatch/results")) else {
        return (Vec::new(), Vec::new());
    };
    let Some(setting) = settings.next() else {
        return (Vec::new(), Vec::new());
    };
    assert!(settings.next().is_none(), "one setting folder");
    let mut names: Vec<String> = std::fs::read_dir(setting.unwrap().path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // s3s-fs keeps its own metadata beside the objects, in hidden files.
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.into_iter().partition(|n| !n.ends_with(".trust.json"))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `watch --publish` next to each training job of a sweep: every result is published
/// once, whoever computes it; a viewer with `--compute never` shows the whole sweep,
/// computing nothing and downloading no checkpoint, and refuses objects that do not
/// hold together.
#[test]
fn writers_publish_each_result_once_and_a_viewer_computes_nothing() {
    let root = run_dir("store-publish");
    let server = Server::start(&root.join("s3"));
    for epoch in 1..=3 {
        server.put(
            &format!("sweep/a/epoch_{epoch}.pdparams"),
            &demo_checkpoint(epoch),
        );
    }
    for epoch in 1..=2 {
        server.put(
            &format!("sweep/b/epoch_{epoch}.pdparams"),
            &demo_checkpoint(epoch),
        );
    }
    let start = |url: &str, cache: &str, extra: &[&str]| {
        let mut args = vec!["--poll", "0.5", "--metrics", "confidence"];
        args.extend_from_slice(extra);
        let mut command = Watch::command(Path::new(url), &args);
        command.arg("--cache").arg(root.join(cache));
        command.envs(env(&server.endpoint(), SECRET));
        Watch::spawn(command)
    };
    // Two writers on run a (two nodes), one on run b.
    let a1 = start("s3://bucket/sweep/a/", "cache-a1", &["--publish"]);
    let a2 = start("s3://bucket/sweep/a/", "cache-a2", &["--publish"]);
    let b = start("s3://bucket/sweep/b/", "cache-b", &["--publish"]);
    for (writer, n) in [(&a1, 3), (&a2, 3), (&b, 2)] {
        for line in checkpoint_lines(writer, n) {
            assert_eq!(str_of(&line, "status"), "ok", "{line}");
            let source = str_of(&line, "source");
            assert!(["computed", "published"].contains(&source), "{line}");
        }
    }
    let run_a = root.join("s3/bucket/sweep/a");
    let run_b = root.join("s3/bucket/sweep/b");
    wait_until("every trust object", || {
        published(&run_a).1.len() == 3 && published(&run_b).1.len() == 2
    });
    let (results_a, _) = published(&run_a);
    assert_eq!(
        results_a.len(),
        3,
        "one object per checkpoint: {results_a:?}"
    );
    for epoch in 1..=3 {
        let prefix = format!("epoch_{epoch}.pdparams.");
        assert_eq!(
            results_a.iter().filter(|n| n.starts_with(&prefix)).count(),
            1,
            "{results_a:?}"
        );
    }
    assert_eq!(published(&run_b).0.len(), 2);
    for writer in [&a1, &a2, &b] {
        let stderr = writer.stderr.lock().unwrap().clone();
        assert!(!stderr.contains("not published"), "{stderr}");
        assert!(!stderr.contains("ignored"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }

    // The viewer: the whole sweep from what is published.
    let viewer = start(
        "s3://bucket/sweep/",
        "cache-viewer",
        &["--runs", "--compute", "never"],
    );
    let seen = checkpoint_lines(&viewer, 5);
    let mut runs: Vec<(String, u64)> = seen
        .iter()
        .map(|l| {
            assert_eq!(str_of(l, "source"), "published", "{l}");
            assert!(!l["samples"].as_array().unwrap().is_empty(), "{l}");
            let object = format!("{}.camwatch/results/", str_of(l, "run"));
            assert!(str_of(l, "published").starts_with(&object), "{l}");
            (str_of(l, "run").to_string(), l["epoch"].as_u64().unwrap())
        })
        .collect();
    runs.sort();
    let a = "s3://bucket/sweep/a/".to_string();
    let b_url = "s3://bucket/sweep/b/".to_string();
    assert_eq!(
        runs,
        [
            (a.clone(), 1),
            (a.clone(), 2),
            (a, 3),
            (b_url.clone(), 1),
            (b_url.clone(), 2)
        ]
    );
    // Published after the viewer started: run b's writer computes epoch 3.
    server.put("sweep/b/epoch_3.pdparams", &demo_checkpoint(3));
    let later = checkpoint_lines(&viewer, 1).remove(0);
    assert_eq!(str_of(&later, "run"), b_url);
    assert_eq!(later["epoch"], 3);
    assert_eq!(str_of(&later, "source"), "published");

    // A result cut short and a foreign one, for a run nobody computes (c's checkpoints
    // are a's bytes: the same ETags, so the same object names).
    let setting = std::fs::read_dir(run_a.join(".camwatch/results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let setting = setting.to_str().unwrap();
    let name = |epoch: u32| {
        let prefix = format!("epoch_{epoch}.pdparams.");
        results_a
            .iter()
            .find(|n| n.starts_with(&prefix))
            .unwrap()
            .clone()
    };
    let whole = std::fs::read(run_a.join(".camwatch/results").join(setting).join(name(1))).unwrap();
    for epoch in [1, 2] {
        server.put(
            &format!("sweep/c/epoch_{epoch}.pdparams"),
            &demo_checkpoint(epoch),
        );
    }
    server.put(
        &format!("sweep/c/.camwatch/results/{setting}/{}", name(1)),
        &whole[..whole.len() / 2],
    );
    server.put(
        &format!("sweep/c/.camwatch/results/{setting}/{}", name(2)),
        b"{\"hello\": \"world\"}",
    );
    wait_until("the viewer to refuse both", || {
        let stderr = viewer.stderr.lock().unwrap();
        stderr.contains("cut short") && stderr.contains("not a camwatch results object")
    });
    let stderr = viewer.stderr.lock().unwrap().clone();
    assert!(!stderr.contains(SECRET));
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.ends_with(": ignored"))
        .collect();
    assert_eq!(refused.len(), 2, "said once each: {stderr}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("s3://bucket/sweep/c/.camwatch/results/"))
    );
    // Never shown.
    let end = Instant::now() + Duration::from_secs(3);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Ok(line) = viewer.lines.recv_timeout(left) {
            assert_ne!(str_of(&line, "run"), "s3://bucket/sweep/c/", "{line}");
        }
    }
    // `history` where the run was never watched: what is published, named by URL.
    let out = Command::new(env!("CARGO_BIN_EXE_camwatch"))
        .args(["history", "s3://bucket/sweep/a/", "--json", "--cache"])
        .arg(root.join("cache-reader"))
        .arg("--samples")
        .arg(common::watch::root().join("samples"))
        .envs(env(&server.endpoint(), SECRET))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checkpoints = dump["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 3, "{dump}");
    for c in checkpoints {
        assert!(
            str_of(c, "path").starts_with("s3://bucket/sweep/a/epoch_"),
            "{c}"
        );
        assert!(
            str_of(c, "published").starts_with("s3://bucket/sweep/a/.camwatch/results/"),
            "{c}"
        );
        assert!(!c["samples"].as_array().unwrap().is_empty(), "{c}");
    }
    // The viewer downloaded no checkpoint.
    let downloaded: Vec<PathBuf> = walk(&root.join("cache-viewer"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pdparams"))
        .collect();
    assert!(downloaded.is_empty(), "{downloaded:?}");
    for watch in [a1, a2, b, viewer] {
        assert!(watch.signal("-TERM").success());
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A store that takes connections and never answers: camwatch waits for it, and still
/// stops at once on SIGTERM (not after the client's minutes of retries).
#[test]
fn a_store_that_never_answers_does_not_hold_up_the_stop() {
    let root = run_dir("store-silent");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let watch = watch("s3://bucket/run/", &root.join("cache"), &endpoint, SECRET);
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    assert!(watch.signal("-TERM").success());
    assert!(
        // (The client alone retries for minutes; 10 s leaves room for a loaded machine.)
        start.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        start.elapsed()
    );
}
