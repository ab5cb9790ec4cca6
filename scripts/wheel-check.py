#!/usr/bin/env python3
"""The PyPI wheel, as a user gets it: built by `pip wheel .`, installed into a fresh venv.

1. The wheel: one file, named and tagged `py3-none-manylinux_2_17_<arch>` (its WHEEL file says
   so, not only its name), at most 12 MB; its version is Cargo.toml's; the binary inside is,
   byte for byte, BINARY (the static build of scripts/build-static, which the wheel build
   reused rather than compiling again).
2. A fresh venv (no pip cache, no index: only this file) installs it; the venv's
   `dbt-secoda --version` names Cargo.toml's version and `dbt-secoda demo` runs the pipeline
   against its simulator (exit 0, a report that says FAILED: the demo's build has failing tests).

Prints the wheel's name and size, and the demo's report.

usage: scripts/wheel-check.py WHEEL_DIR BINARY VENV   (VENV is made anew)
"""

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 12 * 1000 * 1000


def fail(message):
    harness.fail("wheel-check", message)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    wheel_dir, binary, venv = sys.argv[1:4]
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as file:
        version = tomllib.load(file)["package"]["version"]
    wheels = [f for f in os.listdir(wheel_dir) if f.endswith(".whl")]
    if len(wheels) != 1:
        fail(f"{wheel_dir} holds {wheels}, not one wheel")
    (name,) = wheels
    path = os.path.join(wheel_dir, name)
    arch = platform.machine()
    wanted = f"py3-none-manylinux_2_17_{arch}"
    if not re.fullmatch(rf"dbt_secoda-{re.escape(version)}-py3-none-\S*\.whl", name):
        fail(f"{name} is not dbt_secoda-{version}-py3-none-...")
    size = os.path.getsize(path)
    if size > LIMIT:
        fail(f"{name} is {size} bytes, over {LIMIT}")

    with zipfile.ZipFile(path) as wheel:
        info = f"dbt_secoda-{version}.dist-info"
        tags = [
            line.split(": ", 1)[1]
            for line in wheel.read(f"{info}/WHEEL").decode().splitlines()
            if line.startswith("Tag: ")
        ]
        if wanted not in tags or any(not t.startswith("py3-none-") for t in tags):
            fail(f"{name}'s WHEEL file has tags {tags}, not {wanted}")
        metadata = wheel.read(f"{info}/METADATA").decode()
        if f"\nVersion: {version}\n" not in metadata:
            fail(f"{name}'s METADATA does not say Version: {version}")
        inside = wheel.read(f"dbt_secoda-{version}.data/scripts/dbt-secoda")
    with open(binary, "rb") as file:
        if sha256(inside) != sha256(file.read()):
            fail(
                f"the binary in {name} is not {binary}: the wheel build compiled again"
            )
    print(f"wheel-check: {name}, {size / 1e6:.1f} MB, tags {', '.join(tags)}")

    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [
            os.path.join(venv, "bin", "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-index",
            path,
        ],
        check=True,
    )
    installed = os.path.join(venv, "bin", "dbt-secoda")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECODA_", "DBT_"))}
    env["NO_COLOR"] = "1"
    shown = subprocess.run(
        [installed, "--version"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    if shown != f"dbt-secoda {version}":
        fail(f"the venv's dbt-secoda --version says {shown!r}")
    demo = subprocess.run(
        [installed, "demo"], check=False, env=env, capture_output=True, text=True
    )
    if demo.returncode != 0 or "\nResult    FAILED: " not in demo.stdout:
        fail(f"the venv's demo exited {demo.returncode}:\n{demo.stdout}{demo.stderr}")
    print(f"wheel-check: {installed} --version: {shown}; demo:")
    print(demo.stdout, end="")


if __name__ == "__main__":
    main()
