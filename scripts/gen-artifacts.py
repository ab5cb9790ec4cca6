#!/usr/bin/env python3
"""Generate a large, dbt-shaped manifest.json + run_results.json pair for benchmarks.

The shape is the real one: the fixture project's own artifacts (demo/artifacts/build-with-failures,
written by dbt-core 1.12.6) with its nodes repeated under new unique_ids until the manifest reaches
the requested size. Macros, metadata and the rest stay as dbt wrote them. Copy 0 keeps the
fixture's failing, warning and skipped tests; every other copy passes, as in a big project where a
handful of tests fail. Both files share one invocation_id and are written the way dbt writes them
(compact separators, `metadata` first, no trailing newline).

usage: gen-artifacts.py OUT_DIR --manifest-mib 1024
"""

import argparse
import json
import os
import re
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "demo", "artifacts", "build-with-failures")
UID = re.compile(r"\b(model|test|seed|snapshot|unit_test)\.fernleaf\.([A-Za-z0-9_]+)")


def dumps(value):
    return json.dumps(value, separators=(", ", ": "))


def renamer(copy):
    if copy == 0:
        return lambda text: text
    return lambda text: UID.sub(
        lambda m: f"{m.group(1)}.fernleaf.{m.group(2)}_c{copy}", text
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--manifest-mib", type=float, default=1024)
    args = parser.parse_args()
    target = int(args.manifest_mib * 1024 * 1024)

    with open(os.path.join(TEMPLATE, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(TEMPLATE, "run_results.json")) as f:
        run_results = json.load(f)
    invocation = str(uuid.uuid4())
    manifest["metadata"]["invocation_id"] = invocation
    run_results["metadata"]["invocation_id"] = invocation

    nodes_text = dumps(manifest["nodes"])[1:-1]
    unit_text = dumps(manifest["unit_tests"])[1:-1]
    rest = {
        k: v
        for k, v in manifest.items()
        if k not in ("metadata", "nodes", "unit_tests")
    }
    fixed = len(dumps(manifest)) - len(nodes_text) - len(unit_text)
    per_copy = len(nodes_text) + len(unit_text) + 4
    copies = max(1, (target - fixed) // per_copy)

    passing = []
    for result in run_results["results"]:
        ok = dict(result)
        if ok["status"] in ("fail", "warn", "error", "skipped"):
            ok.update(
                status="pass"
                if ok["unique_id"].startswith(("test.", "unit_test."))
                else "success",
                failures=0,
                message=None,
            )
        passing.append(ok)
    failing_text = dumps(run_results["results"])[1:-1]
    passing_text = dumps(passing)[1:-1]

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as out:
        out.write('{"metadata": ' + dumps(manifest["metadata"]) + ', "nodes": {')
        out.writelines(
            (", " if copy else "") + renamer(copy)(nodes_text) for copy in range(copies)
        )
        out.write('}, "unit_tests": {')
        out.writelines(
            (", " if copy else "") + renamer(copy)(unit_text) for copy in range(copies)
        )
        out.write("}")
        out.writelines(
            ", " + dumps(key) + ": " + dumps(value) for key, value in rest.items()
        )
        out.write("}")
    with open(os.path.join(args.out, "run_results.json"), "w") as out:
        out.write('{"metadata": ' + dumps(run_results["metadata"]) + ', "results": [')
        for copy in range(copies):
            text = failing_text if copy == 0 else renamer(copy)(passing_text)
            out.write((", " if copy else "") + text)
        out.write('], "elapsed_time": ' + dumps(run_results["elapsed_time"]))
        out.write(', "args": ' + dumps(run_results["args"]) + "}")
    for name in ("manifest.json", "run_results.json"):
        size = os.path.getsize(os.path.join(args.out, name))
        print(
            f"{name}: {size} bytes ({size / 1048576:.1f} MiB), {copies} copies of the fixture's nodes"
        )


if __name__ == "__main__":
    main()
