//! Networks as CI runners have them: TLS with a private CA, proxies from the environment.
//! The simulator speaks plain HTTP; `netpeers.py` puts TLS in front of it and plays a CONNECT
//! proxy. Certificates come from the `openssl` command; the tests say so and pass without it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// A `netpeers.py` process, killed when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(args: &[&str]) -> Peer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/netpeers.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .trim_start_matches("listening on ")
        .parse()
        .expect("a port");
    Peer { child, port }
}

/// A private CA, and a certificate for localhost it signed: (CA certificate, server certificate,
/// server key); None without the openssl command.
fn certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let path = |name: &str| dir.join(name);
    let extensions = path("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let steps: [Vec<&str>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=dbt-secoda test CA",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ],
        vec!["x509", "-req", "-days", "1", "-CAcreateserial"],
    ];
    let files: [Vec<PathBuf>; 3] = [
        vec![
            "-keyout".into(),
            path("ca.key"),
            "-out".into(),
            path("ca.pem"),
        ],
        vec![
            "-keyout".into(),
            path("server.key"),
            "-out".into(),
            path("server.csr"),
        ],
        vec![
            "-in".into(),
            path("server.csr"),
            "-CA".into(),
            path("ca.pem"),
            "-CAkey".into(),
            path("ca.key"),
            "-extfile".into(),
            extensions.clone(),
            "-out".into(),
            path("server.pem"),
        ],
    ];
    for (args, files) in steps.iter().zip(&files) {
        let made = Command::new("openssl").args(args).args(files).output();
        if !matches!(made, Ok(ref out) if out.status.success()) {
            eprintln!("skipped: the openssl command is not available or failed");
            return None;
        }
    }
    Some((path("ca.pem"), path("server.pem"), path("server.key")))
}

fn simulator_port(sim: &Simulator) -> String {
    sim.url.rsplit(':').next().unwrap().to_string()
}

fn uploads(sim: &Simulator) -> usize {
    sim.state()["uploads"].as_array().unwrap().len()
}

#[test]
fn a_private_ca_is_trusted_through_ca_cert_or_ssl_cert_file_and_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, server_cert, key)) = certificates(dir.path()) else {
        return;
    };
    let sim = Simulator::start(&[]);
    let front = peer(&[
        "tls",
        server_cert.to_str().unwrap(),
        key.to_str().unwrap(),
        &simulator_port(&sim),
    ]);
    let url = format!("https://localhost:{}", front.port);
    let target = failing_build();

    expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--no-wait"])
            .arg("--ca-cert")
            .arg(&cert),
        1,
    );
    assert_eq!(
        uploads(&sim),
        1,
        "the upload went through TLS to the simulator"
    );

    expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--no-wait"])
            .env("SSL_CERT_FILE", &cert),
        1,
    );
    assert_eq!(uploads(&sim), 2, "SSL_CERT_FILE is honoured");

    let output = expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--retry-timeout", "30s"]),
        4,
    );
    let err = stderr(&output);
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("--ca-cert"), "the hint names the fix: {err}");
    assert_eq!(uploads(&sim), 2, "an untrusted server gets nothing");

    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url])
            .arg("--ca-cert")
            .arg(&bad),
        2,
    );
    assert_stderr_contains(&output, "not-a-cert.pem");
}

#[test]
fn proxies_from_the_environment_are_used_and_no_proxy_is_honoured() {
    // Plain HTTP through HTTP_PROXY: the simulator plays the proxy (it answers absolute-form
    // request lines), so the upload reaching it proves the proxy was used.
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let far = [
        "--api-url",
        "http://secoda.invalid",
        "--allow-insecure-http",
        "--no-wait",
    ];
    expect_exit(
        sim.upload(target.path())
            .args(far)
            .env("HTTP_PROXY", &sim.url),
        1,
    );
    assert_eq!(uploads(&sim), 1);

    // NO_PROXY sends it direct, where secoda.invalid does not resolve.
    let mut direct = sim.upload(target.path());
    direct
        .args(far)
        .args(["--retry-timeout", "500ms"])
        .env("HTTP_PROXY", &sim.url)
        .env("NO_PROXY", "secoda.invalid");
    expect_exit(&mut direct, 5);
    assert_eq!(uploads(&sim), 1);

    // HTTPS through a CONNECT proxy (HTTPS_PROXY), to the TLS front of the simulator.
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, server_cert, key)) = certificates(dir.path()) else {
        return;
    };
    let front = peer(&[
        "tls",
        server_cert.to_str().unwrap(),
        key.to_str().unwrap(),
        &simulator_port(&sim),
    ]);
    let log = dir.path().join("connect.log");
    let proxy = peer(&["connect", log.to_str().unwrap()]);
    let url = format!("https://localhost:{}", front.port);
    expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--no-wait"])
            .arg("--ca-cert")
            .arg(&cert)
            .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port)),
        1,
    );
    assert_eq!(uploads(&sim), 2);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(
        seen.contains(&format!("CONNECT localhost:{}", front.port)),
        "{seen}"
    );
}
