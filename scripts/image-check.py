#!/usr/bin/env python3
"""The container image's contents, proved without a container engine.

Assembles what the Dockerfile's final stage holds into a folder (the static binary, the CA
bundle, the libraries `ldd` names if any, distroless's passwd and group with the nonroot user,
/tmp, and the writable /state and /dbt), prints that folder's size (the image-size figure), then
runs the binary there with `chroot --userspec=65532:65532`, with the final stage's ENV, WORKDIR,
ENTRYPOINT, CMD and HEALTHCHECK read from the Dockerfile itself:

1. `--version`;
2. the demo (its report says FAILED: its dbt build has failing tests; the demo itself exits 0);
3. ENTRYPOINT + CMD + `--once` against a simulator on the host's loopback, on a failing dbt build
   in /dbt/target: exit 1, one upload, the state file written by uid 65532;
4. ENTRYPOINT + CMD running, the HEALTHCHECK command answering 0, then SIGTERM: a clean exit.

Needs root (chroot). usage: scripts/image-check.py BINARY   (e.g. "$(scripts/build-static)")
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = f"image-check-key-{os.getpid()}"
INTEGRATION = "5ec0da00-0000-4000-8000-00000000db70"
NONROOT = 65532
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
LIMIT_MB = 25


def fail(message):
    harness.fail("image-check", message)


def final_stage():
    """ENV, WORKDIR, USER, ENTRYPOINT, CMD and HEALTHCHECK of the Dockerfile's last stage."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    stage = text.split("\nFROM ")[-1].splitlines()
    found = {"ENV": {}}
    for line in stage:
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            for pair in rest.split():
                name, _, value = pair.partition("=")
                found["ENV"][name] = value
        elif word in ("WORKDIR", "USER"):
            found[word] = rest.strip()
        elif word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
        elif word == "HEALTHCHECK":
            found[word] = json.loads(rest[rest.index("CMD ") + 4 :])
    for needed in ("WORKDIR", "USER", "ENTRYPOINT", "CMD", "HEALTHCHECK"):
        if needed not in found:
            fail(f"the Dockerfile's final stage has no {needed}")
    if found["USER"] != f"{NONROOT}:{NONROOT}":
        fail(f"the final stage runs as {found['USER']}, not {NONROOT}:{NONROOT}")
    return found


def libraries(binary):
    """The shared libraries `ldd` names (none for the static build)."""
    out = subprocess.run(["ldd", binary], check=False, capture_output=True, text=True)
    if "statically linked" in out.stdout + out.stderr or "not a dynamic" in out.stderr:
        return []
    paths = []
    for line in out.stdout.splitlines():
        parts = line.split("=>")
        path = (parts[1] if len(parts) == 2 else parts[0]).split("(")[0].strip()
        if path.startswith("/"):
            paths.append(path)
    return paths


def assemble(binary, root):
    def put(source, dest):
        target = os.path.join(root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)

    put(binary, "/usr/local/bin/dbt-secoda")
    put(CA_BUNDLE, CA_BUNDLE)
    libs = libraries(binary)
    for lib in libs:
        put(os.path.realpath(lib), lib)
    etc = os.path.join(root, "etc")
    # As distroless writes them.
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/sbin/nologin\n")
        f.write("nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
        f.write(f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write(f"root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT}:\n")
    for folder, mode, owner in (
        ("tmp", 0o1777, 0),
        ("home/nonroot", 0o700, NONROOT),
        ("state", 0o755, NONROOT),
        ("dbt", 0o755, NONROOT),
    ):
        path = os.path.join(root, folder)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        os.chown(path, owner, owner)
    return libs


# What docs/performance.md's watch reference needs: a shell loop on inotifywait running curl.
REFERENCE_TOOLS = ("bash", "inotifywait", "curl")


def reference(work, ours):
    """The same contents for the reference watcher (its programs, their libraries, the CA
    bundle), assembled the same way, for the ratio."""
    programs = [shutil.which(tool) for tool in REFERENCE_TOOLS]
    if None in programs:
        print(
            f"image-check: reference skipped ({', '.join(REFERENCE_TOOLS)} not all installed)"
        )
        return
    root = os.path.join(work, "reference")
    files = {CA_BUNDLE}
    for program in programs:
        files.add(program)
        files.update(libraries(program))
    for path in files:
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)
    theirs = size(root)
    print(
        f"image-check: reference (bash + inotifywait + curl, their libraries, CA bundle) "
        f"{theirs / 1e6:.2f} MB; dbt-secoda / reference = {ours / theirs:.2f}"
    )


def size(root):
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) != 2:
        fail("usage: scripts/image-check.py BINARY")
    if os.geteuid() != 0:
        fail("chroot needs root")
    binary = os.path.abspath(sys.argv[1])
    stage = final_stage()
    work = tempfile.mkdtemp(prefix="image-check-")
    root = os.path.join(work, "rootfs")
    try:
        libs = assemble(binary, root)
        total = size(root)
        print(
            f"image-check: final stage contents {total / 1e6:.2f} MB "
            f"({total} bytes; binary {os.path.getsize(binary)} bytes, "
            f"{len(libs)} shared libraries)"
        )
        if total > LIMIT_MB * 1e6:
            fail(f"the image contents exceed {LIMIT_MB} MB")
        reference(work, total)
        check(root, stage)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("image-check: passed")


def check(root, stage):
    # The image's environment only: nothing of this machine's leaks into the chroot.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "NO_COLOR": "1", **stage["ENV"]}
    uid, gid = (int(x) for x in stage["USER"].split(":"))

    # 1. chroot(1) itself, as the issue names it.
    version = subprocess.run(
        [
            shutil.which("chroot") or "/usr/sbin/chroot",
            f"--userspec={uid}:{gid}",
            root,
            stage["ENTRYPOINT"][0],
            "--version",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if version.returncode != 0 or not version.stdout.startswith("dbt-secoda "):
        fail(
            f"--version in the chroot: {version.returncode} {version.stdout}{version.stderr}"
        )
    print(f"image-check: --version as uid {uid}: {version.stdout.strip()}")

    def enter():
        # What chroot --userspec does, plus the WORKDIR a container runtime applies.
        os.chroot(root)
        os.chdir(stage["WORKDIR"])
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    def run(args, extra=None, timeout=120):
        return subprocess.run(
            args,
            env={**env, **(extra or {})},
            check=False,
            preexec_fn=enter,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(args, extra=None):
        return harness.Process(
            args, {**env, **(extra or {})}, name="image-check", preexec_fn=enter
        )

    entry = stage["ENTRYPOINT"]
    demo = run(entry + ["demo"])
    if demo.returncode != 0 or "Result    FAILED: 4 tests failed" not in demo.stdout:
        fail(
            f"the demo in the chroot exited {demo.returncode}:\n{demo.stdout}\n{demo.stderr}"
        )
    print("image-check: the demo runs (it unpacks its artifacts into /tmp)")

    # A simulator on the host's loopback, which the chroot shares.
    sim = harness.Process(
        [
            os.path.join(root, entry[0].lstrip("/")),
            "simulator",
            "--api-key",
            KEY,
            "--sync-seconds",
            "0.3",
        ],
        {"PATH": env["PATH"], "NO_COLOR": "1"},
        name="image-check",
    )
    url = sim.wait_for("listening on ").split("listening on ")[1]
    target = os.path.join(root, stage["WORKDIR"].lstrip("/"), "target")
    os.makedirs(target)
    demo_pair = os.path.join(ROOT, "demo", "artifacts", "build-with-failures")
    for name in ("manifest.json", "run_results.json"):
        shutil.copy(os.path.join(demo_pair, name), target)
    settings = {
        "SECODA_API_KEY": KEY,
        "SECODA_API_URL": url,
        "SECODA_INTEGRATION_ID": INTEGRATION,
        "DBT_SECODA_POLL_INTERVAL": "100ms",
    }
    try:
        once = run(entry + stage["CMD"] + ["--once"], settings)
        if once.returncode != 1:
            fail(
                f"watch --once exited {once.returncode}:\n{once.stdout}\n{once.stderr}"
            )
        uploads = json.loads(harness.get(f"{url}/_simulator/state"))["uploads"]
        if len(uploads) != 1:
            fail(f"{len(uploads)} uploads after watch --once")
        state = os.path.join(root, stage["ENV"]["DBT_SECODA_STATE_FILE"].lstrip("/"))
        if os.stat(state).st_uid != uid:
            fail("the state file was not written by the nonroot user")
        print(
            f"image-check: watch --once uploaded the pair from {stage['WORKDIR']}/target as uid {uid} (exit 1)"
        )

        port = free_port()
        listen = {**settings, "DBT_SECODA_HEALTH_LISTEN": f"127.0.0.1:{port}"}
        watcher = start(entry + stage["CMD"], listen)
        watcher.wait_for("health endpoints on http://")
        watcher.wait_for("watching ")
        probe = [a.replace(":9090", f":{port}") for a in stage["HEALTHCHECK"]]
        health = run(probe, timeout=30)
        if health.returncode != 0:
            fail(f"the HEALTHCHECK command exited {health.returncode}: {health.stderr}")
        print("image-check: the HEALTHCHECK command answers 0 while watch runs")
        watcher.proc.send_signal(signal.SIGTERM)
        code = watcher.exit_code(timeout=60)
        if code != 0:
            fail(f"watch exited {code} on SIGTERM:\n" + "\n".join(watcher.lines))
        print("image-check: SIGTERM stops watch cleanly (exit 0)")
    finally:
        sim.proc.kill()


if __name__ == "__main__":
    main()
