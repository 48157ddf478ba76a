"""`synchronizer demo` on embedded defaults serves the landing page to a real HTTP client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_landing_page(tmp_path: Path) -> None:
    port = _free_port()
    script = Path(sys.executable).parent / "synchronizer"
    env = {**os.environ, "SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
    process = subprocess.Popen(
        [str(script), "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(3)]
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
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
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
