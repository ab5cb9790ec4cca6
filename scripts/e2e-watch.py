#!/usr/bin/env python3
"""Real dbt, watched: `dbt-secoda watch` beside real dbt-core runs of tests/dbt-project.

The way a sidecar user runs it: the simulator, then `dbt-secoda watch` on a copy of the fixture
project, then dbt itself. Checks, in order:

1. `watch --once`, then `dbt build` (3 failing tests): exactly one upload, byte for byte the final
   files, with that build's invocation id; watch exits 1.
2. A restarted watcher with the same state file does not upload that build again.
3. `watch --once`, then `dbt build --selector all_passing`: one more upload; watch exits 0.
4. A watcher running while `dbt parse` rewrites manifest.json alone uploads nothing, and stops
   cleanly on SIGTERM (exit 0).

usage: scripts/e2e-watch.py DBT_BIN_DIR   (a folder holding the `dbt` executable)
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "debug", "dbt-secoda")
INTEGRATION = "5ec0da00-0000-4000-8000-00000000db70"
KEY = f"e2e-watch-key-{os.getpid()}"


def fail(message):
    harness.fail("e2e-watch", message)


def Process(args, env=None):
    return harness.Process(args, env, name="e2e-watch")


get = harness.get


def main():
    if len(sys.argv) != 2:
        fail("usage: scripts/e2e-watch.py DBT_BIN_DIR")
    dbt_bin = os.path.abspath(sys.argv[1])
    subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="e2e-watch-")
    project = os.path.join(work, "project")
    shutil.copytree(os.path.join(ROOT, "tests", "dbt-project"), project)
    shutil.rmtree(os.path.join(project, "target"), ignore_errors=True)
    state_file = os.path.join(work, "state", "watch.json")
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("SECODA_", "DBT_SECODA_")):
            del env[key]
    env.update(
        SECODA_API_KEY=KEY,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_VERSION_CHECK="false",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
    )

    sim = Process([BIN, "simulator", "--api-key", KEY, "--sync-seconds", "0.5"], env)
    url = sim.wait_for("listening on ").split("listening on ")[1]

    def uploads():
        return json.loads(get(f"{url}/_simulator/state"))["uploads"]

    def watch(*extra):
        process = Process(
            [
                BIN,
                "watch",
                "--api-url",
                url,
                "--integration-id",
                INTEGRATION,
                "--project-dir",
                project,
                "--state-file",
                state_file,
                "--poll-interval",
                "200ms",
                "--health-listen",
                "127.0.0.1:0",
                *extra,
            ],
            env,
        )
        health = (
            process.wait_for("health endpoints on http://")
            .split("http://")[1]
            .split()[0]
        )
        process.wait_for("watching ")
        return process, f"http://{health}"

    def scans(health):
        for line in get(f"{health}/metrics").splitlines():
            if line.startswith("dbt_secoda_watch_scans_total "):
                return float(line.split()[1])
        return 0.0

    def two_more_scans(health):
        target = scans(health) + 2
        deadline = time.monotonic() + 30
        while scans(health) < target:
            if time.monotonic() > deadline:
                fail("the watcher stopped scanning")
            time.sleep(0.05)

    def dbt(*args):
        return subprocess.run(
            [os.path.join(dbt_bin, "dbt"), *args],
            check=False,
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode

    def sha(name):
        with open(os.path.join(project, "target", name), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    try:
        # 1. A failing build, watched with --once.
        watcher, _ = watch("--once", "--output", "json")
        if dbt("build") == 0:
            fail("dbt build was expected to fail on the fixture's broken tests")
        code = watcher.exit_code()
        if code != 1:
            fail(
                f"watch --once after dbt build exited {code}, expected 1:\n"
                + "\n".join(watcher.lines)
            )
        got = uploads()
        if len(got) != 1:
            fail(f"{len(got)} uploads after one dbt build")
        with open(os.path.join(project, "target", "run_results.json")) as f:
            invocation = json.load(f)["metadata"]["invocation_id"]
        upload = got[0]
        if upload["invocation_id"] != invocation:
            fail(
                f"uploaded invocation {upload['invocation_id']}, dbt wrote {invocation}"
            )
        for part in ("manifest", "run_results"):
            if upload[f"{part}_sha256"] != sha(f"{part}.json"):
                fail(f"{part}.json arrived altered")
        report = json.loads(watcher.out[-1])
        if report["invocation_id"] != invocation or report["exit_code"] != 1:
            fail(f"the JSON line does not report the build: {watcher.out[-1][:300]}")
        print(
            f"e2e-watch: dbt build → one upload of invocation {invocation}, exit 1 as expected"
        )

        # 2. Restarted with the same state: that build is not uploaded again.
        watcher, health = watch()
        two_more_scans(health)
        if len(uploads()) != 1:
            fail("a restarted watcher uploaded the first build again")
        watcher.proc.send_signal(signal.SIGTERM)
        if watcher.exit_code() != 0:
            fail("the restarted watcher did not stop cleanly")
        print("e2e-watch: restarted with the same state → nothing uploaded again")

        # 3. A passing build.
        watcher, _ = watch("--once")
        if dbt("build", "--selector", "all_passing") != 0:
            fail("dbt build --selector all_passing failed")
        code = watcher.exit_code()
        if code != 0:
            fail(
                f"watch --once after a passing build exited {code}:\n"
                + "\n".join(watcher.lines)
            )
        if len(uploads()) != 2:
            fail(f"{len(uploads())} uploads after the passing build, expected 2")
        print(
            "e2e-watch: dbt build --selector all_passing → one more upload, exit 0 as expected"
        )

        # 4. dbt parse rewrites manifest.json alone: nothing to upload.
        watcher, health = watch()
        if dbt("parse") != 0:
            fail("dbt parse failed")
        two_more_scans(health)
        if len(uploads()) != 2:
            fail("dbt parse alone caused an upload")
        watcher.proc.send_signal(signal.SIGTERM)
        if watcher.exit_code() != 0:
            fail("the watcher did not stop cleanly on SIGTERM")
        print("e2e-watch: dbt parse → nothing uploaded; SIGTERM → exit 0")
    finally:
        sim.proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
