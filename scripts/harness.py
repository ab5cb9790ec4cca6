"""What the end-to-end scripts share: child processes whose output is collected as it comes,
waits on a line they print (never on a fixed sleep), and small HTTP GETs."""

import subprocess
import sys
import threading
import time
import urllib.request


def fail(script, message):
    print(f"{script}: {message}", file=sys.stderr)
    sys.exit(1)


class Process:
    """A child whose stdout and stderr lines are collected as they come."""

    def __init__(self, args, env=None, name="e2e", **popen):
        self.name = name
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            **popen,
        )
        self.lines = []
        self.out = []
        for stream, sink in (
            (self.proc.stderr, self.lines),
            (self.proc.stdout, self.out),
        ):
            threading.Thread(
                target=self._collect, args=(stream, sink), daemon=True
            ).start()

    @staticmethod
    def _collect(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, needle, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines) + list(self.out):
                if needle in line:
                    return line
            if self.proc.poll() is not None and not any(
                needle in x for x in self.lines
            ):
                break
            time.sleep(0.02)
        fail(self.name, f"{needle!r} never appeared:\n" + "\n".join(self.lines))

    def exit_code(self, timeout=120):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(self.name, "the process did not exit:\n" + "\n".join(self.lines))


def get(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()
