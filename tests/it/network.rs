//! Networks as CI runners have them: TLS with a private CA, client certificates, proxies from
//! the environment, a proxy that wants a login. The simulator speaks plain HTTP; `netpeers.py`
//! puts TLS in front of it and plays a CONNECT proxy; Debian's tinyproxy (`TINYPROXY`, or on the
//! PATH) is the proxy with a login. Certificates come from the `openssl` command. Without a tool
//! the tests say so and pass, except under `DBT_SECODA_REQUIRE_TOOLS` (CI).

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
    if !have_tool("openssl") {
        return None;
    }
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

/// `openssl ARGS`, checked.
fn openssl(args: &[&std::ffi::OsStr]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A client certificate (EC P-256, for client authentication) named `name`: signed by the CA
/// in `dir` (ca.pem, ca.key, from [`certificates`]), or self-signed. (certificate, key).
fn client_certificate(dir: &Path, name: &str, signed_by_ca: bool) -> (PathBuf, PathBuf) {
    let path = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let ext = path(".ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    openssl(&[
        os("req"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:prime256v1"),
        os("-nodes"),
        os("-subj"),
        os("/CN=dbt-secoda ci"),
        os("-keyout"),
        path(".key").as_os_str(),
        os("-out"),
        path(".csr").as_os_str(),
    ]);
    let mut sign: Vec<&std::ffi::OsStr> = vec![os("x509"), os("-req"), os("-days"), os("1")];
    let (ca, ca_key, key) = (dir.join("ca.pem"), dir.join("ca.key"), path(".key"));
    if signed_by_ca {
        sign.extend([
            os("-CA"),
            ca.as_os_str(),
            os("-CAkey"),
            ca_key.as_os_str(),
            os("-CAcreateserial"),
        ]);
    } else {
        sign.extend([os("-key"), key.as_os_str()]);
    }
    let (csr, ext_path, out) = (path(".csr"), ext.clone(), path(".pem"));
    sign.extend([
        os("-in"),
        csr.as_os_str(),
        os("-extfile"),
        ext_path.as_os_str(),
        os("-out"),
        out.as_os_str(),
    ]);
    openssl(&sign);
    (path(".pem"), path(".key"))
}

#[test]
fn a_server_that_demands_a_client_certificate_gets_the_one_given() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, server_cert, server_key)) = certificates(dir.path()) else {
        return;
    };
    let (cert, key) = client_certificate(dir.path(), "client", true);
    let sim = Simulator::start(&[]);
    let front = peer(&[
        "tls",
        server_cert.to_str().unwrap(),
        server_key.to_str().unwrap(),
        &simulator_port(&sim),
        ca.to_str().unwrap(),
    ]);
    let url = format!("https://localhost:{}", front.port);
    let target = failing_build();
    let upload = || {
        let mut cmd = sim.upload(target.path());
        cmd.args(["--api-url", &url, "--no-wait"])
            .env("SSL_CERT_FILE", &ca);
        cmd
    };

    expect_exit(
        upload()
            .arg("--client-cert")
            .arg(&cert)
            .arg("--client-key")
            .arg(&key),
        1,
    );
    assert_eq!(uploads(&sim), 1, "the upload went through mutual TLS");
    let output = expect_exit(
        sim.cli(&["doctor", "--api-url", &url, "--integration-id", INTEGRATION])
            .arg("--target-dir")
            .arg(target.path())
            .arg("--client-cert")
            .arg(&cert)
            .arg("--client-key")
            .arg(&key)
            .env("SSL_CERT_FILE", &ca),
        0,
    );
    assert!(
        stdout(&output).contains(&format!("client certificate {}", cert.display())),
        "{}",
        stdout(&output)
    );

    // One file holding both, from the environment.
    let both = dir.path().join("client-both.pem");
    let pem = [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat();
    std::fs::write(&both, pem).unwrap();
    std::fs::set_permissions(&both, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let output = expect_exit(upload().env("SECODA_CLIENT_CERT", &both), 1);
    assert_eq!(uploads(&sim), 2);
    assert!(
        !stderr(&output).contains("other users"),
        "{}",
        stderr(&output)
    );

    // Without one: refused at once with what to do, not retried as if the network were down.
    let output = expect_exit(&mut upload(), 4);
    let err = stderr(&output);
    assert!(err.contains("wants a client certificate"), "{err}");
    assert!(err.contains("--client-cert"), "{err}");
    assert!(!err.contains("retrying"), "{err}");

    // One the server's CA did not sign.
    let (stranger, stranger_key) = client_certificate(dir.path(), "stranger", false);
    let output = expect_exit(
        upload()
            .arg("--client-cert")
            .arg(&stranger)
            .arg("--client-key")
            .arg(&stranger_key),
        4,
    );
    assert_stderr_contains(&output, "did not accept the client certificate");
    assert_stderr_contains(&output, "stranger.pem");
    assert_eq!(uploads(&sim), 2, "nothing reached the simulator");

    // A key that is not the certificate's, or no certificate: exit 2 before any connection.
    let output = expect_exit(
        upload()
            .arg("--client-cert")
            .arg(&cert)
            .arg("--client-key")
            .arg(&stranger_key),
        2,
    );
    assert_stderr_contains(&output, "cannot use the client certificate");
    let output = expect_exit(upload().arg("--client-key").arg(&key), 2);
    assert_stderr_contains(&output, "--client-key was given without --client-cert");
    let output = expect_exit(upload().arg("--client-cert").arg(&ca), 2);
    assert_stderr_contains(&output, "no PEM private key");
}

#[test]
fn an_https_url_to_a_plain_http_server_says_to_write_http_at_once() {
    // `--api-url 127.0.0.1:PORT` has no scheme, so it is https; the simulator speaks plain HTTP.
    let sim = Simulator::start(&[]);
    let bare = sim.url.trim_start_matches("http://").to_string();
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--api-url", &bare]), 4);
    let err = stderr(&output);
    assert!(err.contains("answered in plain HTTP, not HTTPS"), "{err}");
    assert!(
        err.contains(&format!("write --api-url {}", sim.url)),
        "the hint names the URL to write: {err}"
    );
    assert!(!err.contains("retrying"), "not retried: {err}");
    assert_eq!(uploads(&sim), 0);
}

/// A tinyproxy that wants `user`:`password`, on a free loopback port; killed when dropped.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tinyproxy {
    /// None (the test skips) when tinyproxy is not installed and CI does not require it.
    fn start(user: &str, password: &str) -> Option<Tinyproxy> {
        let program = std::env::var_os("TINYPROXY").unwrap_or_else(|| "tinyproxy".into());
        if !have_tool(program.to_str().unwrap()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // tinyproxy takes a fixed port.
        let port: u16 = free_loopback_address()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\nAllow 127.0.0.1\n\
                 LogLevel Info\nLogFile \"{}\"\nBasicAuth {user} {password}\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new(&program)
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut proxy = Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        };
        // Ready when it accepts a connection; a tinyproxy that exited says why in its log.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = proxy.child.try_wait().unwrap() {
                panic!(
                    "tinyproxy exited ({status}): {}",
                    std::fs::read_to_string(&proxy.log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(proxy)
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn a_proxy_that_wants_a_login_gets_it_and_it_is_never_printed() {
    const PASSWORD: &str = "proxy-PW-never-shown-7731";
    let Some(proxy) = Tinyproxy::start("robot", PASSWORD) else {
        return;
    };
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let hidden = |output: &std::process::Output| {
        for text in [stdout(output), stderr(output)] {
            assert!(
                !text.contains(PASSWORD),
                "the proxy password is printed:\n{text}"
            );
            assert!(
                !text.contains("never-shown"),
                "part of it is printed:\n{text}"
            );
        }
    };

    // Plain HTTP through HTTP_PROXY.
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "-vvv"])
            .env("HTTP_PROXY", proxy.url("robot", PASSWORD)),
        1,
    );
    hidden(&output);
    assert_eq!(uploads(&sim), 1);
    assert!(
        proxy
            .log()
            .contains(&format!("127.0.0.1:{}", simulator_port(&sim))),
        "the request went through the proxy: {}",
        proxy.log()
    );

    // A wrong password: the proxy's refusal (tinyproxy answers 401 with a Basic challenge, squid
    // 407) is final, not blamed on the API key, and neither password is printed.
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "-vvv"])
            .env("HTTP_PROXY", proxy.url("robot", "wrong-never-shown-1234")),
        4,
    );
    hidden(&output);
    assert!(!stderr(&output).contains("wrong-never-shown"));
    assert_stderr_contains(&output, "a proxy refused the request");
    assert_stderr_contains(&output, "HTTP_PROXY");
    assert!(!stderr(&output).contains("retrying"), "{}", stderr(&output));
    assert_eq!(uploads(&sim), 1);

    // HTTPS through CONNECT (HTTPS_PROXY), to the simulator's TLS front.
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, server_cert, server_key)) = certificates(dir.path()) else {
        return;
    };
    let front = peer(&[
        "tls",
        server_cert.to_str().unwrap(),
        server_key.to_str().unwrap(),
        &simulator_port(&sim),
    ]);
    let url = format!("https://localhost:{}", front.port);
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--no-wait", "-vvv"])
            .arg("--ca-cert")
            .arg(&ca)
            .env("HTTPS_PROXY", proxy.url("robot", PASSWORD)),
        1,
    );
    hidden(&output);
    assert_eq!(uploads(&sim), 2);
    assert!(
        proxy.log().contains(&format!("localhost:{}", front.port)),
        "CONNECT went through the proxy: {}",
        proxy.log()
    );
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &url, "--no-wait", "-vvv"])
            .arg("--ca-cert")
            .arg(&ca)
            .env("HTTPS_PROXY", proxy.url("robot", "wrong-never-shown-1234")),
        4,
    );
    hidden(&output);
    assert!(!stderr(&output).contains("wrong-never-shown"));
    assert_stderr_contains(&output, "would not open a tunnel");
    assert_stderr_contains(&output, "HTTPS_PROXY");
    assert!(!stderr(&output).contains("retrying"), "{}", stderr(&output));
    assert_eq!(uploads(&sim), 2);
}

#[test]
fn an_answer_that_trickles_past_the_stall_timeout_says_so() {
    // Headers at once, then the body at 1 byte a second: the attempt's time runs out while the
    // answer is still arriving, which reqwest reports as "error decoding response body".
    let slow = peer(&["trickle", "1"]);
    let target = failing_build();
    let output = expect_exit(
        bin()
            .env("SECODA_API_KEY", KEY)
            .args(["upload", "--no-wait", "--integration-id", INTEGRATION])
            .args(["--api-url", &format!("http://127.0.0.1:{}", slow.port)])
            .args(["--stall-timeout", "3s", "--retry-timeout", "4s"])
            .arg("--target-dir")
            .arg(target.path()),
        5,
    );
    let err = stderr(&output);
    assert!(
        err.contains("the answer was still arriving after 3s (--stall-timeout)"),
        "{err}"
    );
    assert!(!err.contains("decoding"), "{err}");
}

/// `upload` of a passing build against a `netpeers.py framing KIND` peer.
fn upload_to_framing(kind: &str, extra: &[&str]) -> std::process::Output {
    let server = peer(&["framing", kind]);
    let target = passing_build();
    bin()
        .env("SECODA_API_KEY", KEY)
        .args(["upload", "--integration-id", INTEGRATION])
        .args(["--api-url", &format!("http://127.0.0.1:{}", server.port)])
        .args(["--poll-interval", "100ms", "--retry-timeout", "1s"])
        .args(extra)
        .arg("--target-dir")
        .arg(target.path())
        .output()
        .unwrap()
}

#[test]
fn answers_framed_as_http_1_0_or_chunked_are_read_like_any_other() {
    // The whole run (key check, upload, trigger, polls) against a server that answers in
    // HTTP/1.0 (the body ends with the connection) or with a chunked body.
    for kind in ["http10", "chunked"] {
        let output = upload_to_framing(kind, &["--output", "json"]);
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", stderr(&output));
        let report = json_report(&output);
        assert_eq!(report["secoda"]["failing"], serde_json::json!([]), "{kind}");
    }
}

#[test]
fn an_answer_closed_after_its_headers_is_retried_then_exit_5() {
    let output = upload_to_framing("close-after-headers", &[]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("the answer broke off"), "{err}");
    assert!(err.contains("retrying in"), "{err}");
}

#[test]
fn an_answer_over_64_mib_is_refused_not_read_into_memory() {
    let output = upload_to_framing("huge", &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_stderr_contains(&output, "the answer is larger than 64 MiB");
}
