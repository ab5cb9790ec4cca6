#!/usr/bin/env python3
"""What `dbt-secoda watch` costs: detection latency, idle CPU, idle memory, memory for a 1 GiB pair.

Against the simulator on loopback, with the release build. The reference in the same run is what a
user would write by hand: `inotifywait -m -e close_write` piped into a shell loop that runs
`curl -F` for each closed run_results.json (no pairing, no snapshot, no checks).

1. Latency, ROUNDS times for each of inotify, --polling and the reference: a writer imitating dbt
   (manifest in 8 KiB writes, then run_results) closes run_results.json at T; the simulator stamps
   the first byte of the upload at U (`first_byte_unix`); latency = U - T.
   Rounds start at least 4.2 s apart: each is two write requests (the upload and the trigger), and
   Secoda allows 30 a minute, which the watcher keeps to (a faster bench would measure the pacer).
2. Idle CPU over IDLE seconds (utime + stime from /proc), inotify and --polling (default scan
   interval), and the reference.
3. Idle memory: VmRSS, and RssAnon (the process's own memory; VmRSS adds the binary's pages, which
   depend on what the page cache holds: the binary is run from a fresh copy for that reason), and
   the peak (VmHWM) while a 1 GiB pair (scripts/gen-artifacts.py) is snapshotted and uploaded with
   --no-wait.

BENCH_BIN names the binary to measure (default: target/release/dbt-secoda, built first).

usage: scripts/bench-watch.py [ROUNDS (20)] [IDLE_SECONDS (60)] [BIG_MIB (1024)]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "target", "release", "dbt-secoda"))
ROUND_GAP = 4.2
DEMO = os.path.join(ROOT, "demo", "artifacts", "build-with-failures")
INTEGRATION = "5ec0da00-0000-4000-8000-00000000db70"
DEMO_ID = "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
KEY = f"bench-watch-{os.getpid()}"
TICK = os.sysconf("SC_CLK_TCK")


def get(url):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def start_simulator():
    sim = subprocess.Popen(
        [BIN, "simulator", "--api-key", KEY, "--sync-seconds", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = sim.stdout.readline().strip().split("listening on ")[1]
    return sim, url


def uploads(url):
    return get(f"{url}/_simulator/state")["uploads"]


def write_like_dbt(path, data):
    with open(path, "wb") as f:
        for i in range(0, len(data), 8192):
            f.write(data[i : i + 8192])
            f.flush()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    """pid and its descendants (the reference is a shell pipeline)."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)],
        check=False,
        capture_output=True,
        text=True,
    )
    kids = [int(p) for p in out.stdout.split()]
    return [pid] + [d for k in kids for d in children(k)]


def start_watcher(url, target, mode, state):
    args = [
        BIN,
        "-q",
        "watch",
        "--no-wait",
        "--api-url",
        url,
        "--integration-id",
        INTEGRATION,
        "--target-dir",
        target,
        "--state-file",
        state,
    ]
    if mode == "polling":
        args.append("--polling")
    env = dict(os.environ, SECODA_API_KEY=KEY)
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_reference(url, target):
    script = (
        f"inotifywait -q -m -e close_write --format %f {target} | while read f; do "
        f'[ "$f" = run_results.json ] && curl -sS -o /dev/null '
        f'-H "Authorization: Bearer {KEY}" -F run_results=@{target}/run_results.json '
        f"-F manifest=@{target}/manifest.json "
        f"{url}/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/; done"
    )
    return subprocess.Popen(["bash", "-c", script], start_new_session=True)


def wait_for(url, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = uploads(url)
        if len(got) >= count:
            return got
        time.sleep(0.01)
    raise SystemExit(f"bench-watch: no upload within {timeout} s")


def latency(mode, rounds):
    sim, url = start_simulator()
    work = tempfile.mkdtemp(prefix="bench-watch-")
    target = os.path.join(work, "target")
    os.makedirs(target)
    with open(os.path.join(DEMO, "manifest.json"), "rb") as f:
        manifest = f.read()
    with open(os.path.join(DEMO, "run_results.json"), "rb") as f:
        run_results = f.read()
    if mode == "reference":
        proc = start_reference(url, target)
    else:
        proc = start_watcher(url, target, mode, os.path.join(work, "state.json"))
    time.sleep(1.5)  # start-up, not measured
    figures = []
    try:
        for n in range(rounds):
            started = time.monotonic()
            invocation = f"00000000-0000-4000-8000-{n:012d}"
            m = manifest.replace(DEMO_ID.encode(), invocation.encode())
            r = run_results.replace(DEMO_ID.encode(), invocation.encode())
            write_like_dbt(os.path.join(target, "manifest.json"), m)
            write_like_dbt(os.path.join(target, "run_results.json"), r)
            closed = time.time()
            got = wait_for(url, n + 1)
            figures.append(got[n]["first_byte_unix"] - closed)
            time.sleep(max(0.3, ROUND_GAP - (time.monotonic() - started)))
    finally:
        if mode == "reference":
            os.killpg(proc.pid, 15)
        else:
            proc.terminate()
        proc.wait()
        sim.kill()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def idle(mode, seconds):
    sim, url = start_simulator()
    work = tempfile.mkdtemp(prefix="bench-watch-")
    target = os.path.join(work, "target")
    os.makedirs(target)
    if mode == "reference":
        proc = start_reference(url, target)
    else:
        proc = start_watcher(url, target, mode, os.path.join(work, "state.json"))
    time.sleep(2)
    pids = children(proc.pid)
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    used = sum(cpu_seconds(p) for p in pids) - before
    rss = sum(status(p, "VmRSS") for p in pids)
    anon = sum(status(p, "RssAnon") for p in pids)
    if mode == "reference":
        os.killpg(proc.pid, 15)
    else:
        proc.terminate()
    proc.wait()
    sim.kill()
    shutil.rmtree(work, ignore_errors=True)
    return used / seconds * 100, rss, anon


def big_pair(mib):
    data = os.path.join(ROOT, "target", "bench", f"artifacts-{mib}")
    if not os.path.exists(os.path.join(data, "manifest.json")):
        gen = os.path.join(ROOT, "scripts", "gen-artifacts.py")
        subprocess.run(
            [sys.executable, gen, data, "--manifest-mib", str(mib)], check=True
        )
    sim, url = start_simulator()
    work = tempfile.mkdtemp(
        prefix="bench-watch-", dir=os.path.join(ROOT, "target", "bench")
    )
    target = os.path.join(work, "target")
    os.makedirs(target)
    proc = start_watcher(url, target, "inotify", os.path.join(work, "state.json"))
    time.sleep(1.5)
    idle_rss = status(proc.pid, "VmRSS")
    shutil.copy(
        os.path.join(data, "manifest.json"), os.path.join(target, "manifest.json")
    )
    shutil.copy(
        os.path.join(data, "run_results.json"), os.path.join(target, "run_results.json")
    )
    size = sum(os.path.getsize(os.path.join(target, f)) for f in os.listdir(target))
    started = time.monotonic()
    wait_for(url, 1, timeout=300)
    took = time.monotonic() - started
    peak = status(proc.pid, "VmHWM")
    proc.terminate()
    proc.wait()
    sim.kill()
    shutil.rmtree(work, ignore_errors=True)
    return idle_rss, peak, size, took


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    global BIN
    if "BENCH_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    fresh = tempfile.mkdtemp(prefix="bench-watch-bin-")
    BIN = shutil.copy(BIN, os.path.join(fresh, "dbt-secoda"))
    if shutil.which("inotifywait") is None:
        raise SystemExit(
            "bench-watch: needs inotifywait (Debian's inotify-tools) for the reference"
        )

    print(
        f"\nLatency from run_results.json closed to the upload's first byte ({rounds} rounds):\n"
    )
    print("| watcher | median (ms) | p90 (ms) | max (ms) | target |")
    print("| --- | --- | --- | --- | --- |")
    targets = {
        "inotify": "≤ debounce (250) + 100",
        "polling": "≤ scan (1000) + debounce (250) + 100",
        "reference": "(no pairing or checks)",
    }
    for mode in ("inotify", "polling", "reference"):
        ms = sorted(x * 1000 for x in latency(mode, rounds))
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        print(
            f"| {mode} | {statistics.median(ms):.0f} | {p90:.0f} | {ms[-1]:.0f} | {targets[mode]} |"
        )

    print(f"\nIdle, {seconds} s with nothing written:\n")
    print("| watcher | CPU (% of one core) | RSS (MiB) | of which anonymous (MiB) |")
    print("| --- | --- | --- | --- |")
    for mode in ("inotify", "polling", "reference"):
        cpu, rss, anon = idle(mode, seconds)
        print(f"| {mode} | {cpu:.3f} | {rss:.1f} | {anon:.1f} |")

    idle_rss, peak, size, took = big_pair(mib)
    print(f"\nA {size / 2**30:.2f} GiB pair snapshotted and uploaded (--no-wait):\n")
    print(
        "| idle RSS (MiB) | peak RSS during the pair (MiB) | seconds until the simulator holds it |"
    )
    print("| --- | --- | --- |")
    print(f"| {idle_rss:.1f} | {peak:.1f} | {took:.1f} |")


if __name__ == "__main__":
    main()
