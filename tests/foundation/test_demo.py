"""`synchronizer demo` on embedded defaults serves the landing page to a real HTTP client, and
syncs its linked users for real: an appointment made in the simulated Outlook appears in the
CRM, and one made in SuperOffice appears in Outlook, within seconds (push)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Demo:
    """`synchronizer demo` as a person starts it; its output read as it comes (a pipe nobody
    reads would fill and stall the demo)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.env = {**os.environ, "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
        self.process = subprocess.Popen(
            [str(SCRIPT), "demo", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self.lines: list[str] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.arrived:
                self.lines.append(line)
                self.arrived.notify_all()

    def line(self, n: int, seconds: float = 60) -> str:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.lines) > n, seconds), self.lines
            return self.lines[n]

    def wait_for(self, start: str, seconds: float) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(start)), None)

        with self.arrived:
            assert self.arrived.wait_for(lambda: found() is not None, seconds), "".join(
                self.lines[-80:]
            )
            return found() or ""

    def children(self) -> list[int]:
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


SCRIPT = Path(sys.executable).parent / "synchronizer"


def test_demo_serves_landing_page(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    port, process = demo.port, demo.process
    try:
        banner = [demo.line(n) for n in range(3)]
        assert f"http://127.0.0.1:{port}/" in banner[0]
        match = re.search(r"administrator: (\S+)\s+password: (\S+)", banner[1])
        assert match, banner
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "demo did not start listening"
                time.sleep(0.2)
        assert response.status_code == 200
        assert "Synchronizer keeps SuperOffice CRM" in response.text
        stored = (tmp_path / "instance" / "demo_admin_password").read_text().strip()
        assert stored == match.group(2)
        # The simulated outside world runs beside it, over https with the demo CA.
        for name in ("superoffice", "login", "graph", "exchange", "google"):
            assert name in banner[2]
        sims = json.loads((tmp_path / "instance" / "simulators.json").read_text())
        session = requests.Session()
        session.trust_env = False
        stats = session.get(sims["graph"] + "/_sim/stats", verify=sims["ca_file"], timeout=5)
        assert stats.status_code == 200
        assert stats.json()["name"]
        # The Check site of the demo runs against that world: a healthy tenant passes and
        # iCloud mail fails as unsupported (plans need an administrator's sign-in, so an
        # anonymous report cannot fail on them).
        for target, verdict in (("adele@contoso.example", "pass"), ("icloudmail.example", "fail")):
            started = requests.post(
                f"http://127.0.0.1:{port}/api/checks", json={"target": target}, timeout=10
            )
            assert started.status_code == 202, started.text
            report = _wait_for_report(f"http://127.0.0.1:{port}/api/checks/{started.json()['id']}")
            assert report["verdict"] == verdict, report
    finally:
        demo.stop()
    assert process.returncode in (0, -signal.SIGINT)
    assert not (tmp_path / "instance" / "simulators.json").exists()


def _wait_for_report(url: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        body = requests.get(url, timeout=10).json()
        if body["status"] == "done":
            return body  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


def test_the_demo_syncs_its_users_for_real_and_pushes_edits_across_in_seconds(
    tmp_path: Path,
) -> None:
    demo = Demo(tmp_path)
    try:
        demo.wait_for("ready: first sync done and push on", seconds=150)
        daemon = demo.children()
        assert len(daemon) == 2  # the worker and the scheduler
        for side, user, subject, where in (
            ("outlook", "adele@contoso.example", "Lunch with Ingrid", "SuperOffice"),
            ("superoffice", "megan@contoso.example", "Call Bergen Shipping", "Outlook"),
        ):
            tried = subprocess.run(
                [str(SCRIPT), "demo-edit", side, "--user", user, subject],
                env=demo.env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert tried.returncode == 0, tried.stdout + tried.stderr
            took = re.search(rf"appeared in {where}.* after ([0-9.]+) s", tried.stdout)
            assert took and float(took.group(1)) < 10, tried.stdout  # push, not the 15-min poll
        assert "not ready" not in "".join(demo.lines)
    finally:
        demo.stop()
    assert demo.process.returncode in (0, -signal.SIGINT)
    for pid in daemon:  # the worker and the scheduler stopped with it
        assert not Path(f"/proc/{pid}").exists()
