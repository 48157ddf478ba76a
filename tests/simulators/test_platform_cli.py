"""`synchronizer simulators` as a user runs it: a subprocess in an empty folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
import requests

from simulators import runner
from simulators.registry import SIMULATORS

SYNCHRONIZER = str(Path(sys.executable).parent / "synchronizer")
NON_SERVICE_KEYS = {"ca_file", "dns", "hosts"}


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCHRONIZER_")}
    return subprocess.Popen(
        [SYNCHRONIZER, "simulators", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_json(process: subprocess.Popen[str], path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"exited early ({process.returncode}): {process.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("simulators.json never appeared")
        time.sleep(0.05)
    return json.loads(path.read_text())


def stale(path: Path) -> bool:
    try:
        return '127.0.0.1:1"' in path.read_text()
    except FileNotFoundError:
        return False


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        return process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_runs_until_sigterm_and_cleans_up(tmp_path: Path) -> None:
    json_path = tmp_path / "instance" / "simulators.json"
    json_path.parent.mkdir()
    json_path.write_text('{"superoffice": "https://127.0.0.1:1"}')  # left by a killed run
    process = start(tmp_path)
    deadline = time.monotonic() + 30
    while stale(json_path):
        assert time.monotonic() < deadline, "the stale file was never replaced"
        time.sleep(0.02)
    summary = wait_for_json(process, json_path)

    services = {k: v for k, v in summary.items() if k not in NON_SERVICE_KEYS}
    assert set(services) == {spec.name for spec in SIMULATORS}
    assert Path(summary["ca_file"]).is_file()
    session = requests.Session()
    session.trust_env = False
    for url in services.values():
        response = session.get(url + "/_sim/stats", verify=summary["ca_file"], timeout=5)
        assert response.status_code == 200
    resolver = dns.resolver.Resolver(configure=False)
    host, port = summary["dns"].rsplit(":", 1)
    resolver.nameservers, resolver.port = [host], int(port)
    answer = resolver.resolve("imaponly.example", "MX")
    assert answer[0].exchange.to_text() == "mail.imaponly.example."
    assert all(address.startswith("127.") for address in summary["hosts"].values())

    out, err = stop(process, signal.SIGTERM)
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert lines == [f"{name} {url}" for name, url in services.items()] + [
        f"ca_file {summary['ca_file']}",
        f"dns {summary['dns']}",
    ]
    assert not json_path.exists()


def free_port_block(size: int) -> int:
    """A base port with `size` free TCP ports and a free UDP port at the base."""
    for base in range(41000, 60000, 97):
        sockets = []
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(udp)
            udp.bind(("127.0.0.1", base))
            for port in range(base, base + size):
                tcp = socket.socket()
                sockets.append(tcp)
                tcp.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port block")


def test_port_base_and_ctrl_c(tmp_path: Path) -> None:
    base = free_port_block(len(SIMULATORS) + 1)
    process = start(tmp_path, "--port-base", str(base))
    summary = wait_for_json(process, tmp_path / "instance" / "simulators.json")
    assert summary["dns"] == f"127.0.0.1:{base}"
    ports = [
        int(url.rsplit(":", 1)[1])
        for name, url in summary.items()
        if name in {spec.name for spec in SIMULATORS}
    ]
    assert sorted(ports) == list(range(base + 1, base + 1 + len(SIMULATORS)))
    _, err = stop(process, signal.SIGINT)
    assert process.returncode == 0, err
    assert not (tmp_path / "instance" / "simulators.json").exists()


def expected_services(names: list[str]) -> set[str]:
    """The names started for `--only names` (an entry sharing another's app brings that one)."""
    specs = {spec.name: spec for spec in SIMULATORS}
    return set(names) | {specs[n].same_app_as for n in names if specs[n].same_app_as}  # type: ignore[misc]


def test_only_superoffice_exits_0_on_sigterm_and_ctrl_c(tmp_path: Path) -> None:
    runs = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # both at once: each run is mostly start-up
        folder = tmp_path / sig.name
        folder.mkdir()
        runs.append((sig, folder, start(folder, "--only", "superoffice")))
    for _, folder, process in runs:
        summary = wait_for_json(process, folder / "instance" / "simulators.json")
        assert set(summary) - NON_SERVICE_KEYS == {"superoffice"}
    for sig, folder, process in runs:
        _, err = stop(process, sig)
        assert process.returncode == 0, (sig.name, err)
        assert "Traceback" not in err and "Aborted" not in err
        assert not (folder / "instance" / "simulators.json").exists()


ONLY_COMBINATIONS = [[spec.name] for spec in SIMULATORS] + [["exchange", "google"]]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
@pytest.mark.parametrize("names", ONLY_COMBINATIONS, ids="+".join)
def test_every_only_combination_stops_on_a_signal(
    tmp_path: Path, names: list[str], sig: signal.Signals
) -> None:
    # In-process (the command is this function plus click; the subprocess tests above cover
    # that part): returning normally is what makes the command exit 0.
    json_path = tmp_path / "instance" / "simulators.json"

    def signal_when_ready() -> None:
        deadline = time.monotonic() + 20
        while not json_path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), sig)

    printed: list[str] = []
    sender = threading.Thread(target=signal_when_ready)
    sender.start()
    runner.serve_until_stopped(tmp_path / "instance", names=names, echo=printed.append)
    sender.join()
    assert {line.split()[0] for line in printed} - {"ca_file", "dns"} == expected_services(names)
    assert not json_path.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_signal_during_start_up_ends_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    started: list[runner.SimulatorStack] = []

    def start_all_interrupted(**kwargs: Any) -> runner.SimulatorStack:
        os.kill(os.getpid(), sig)  # arrives while the simulators are still starting
        started.append(real_start_all(**kwargs))
        return started[-1]

    real_start_all = runner.start_all
    monkeypatch.setattr(runner, "start_all", start_all_interrupted)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    printed: list[str] = []
    runner.serve_until_stopped(tmp_path / "instance", names=["superoffice"], echo=printed.append)
    assert printed == []  # never announced as ready
    assert not (tmp_path / "instance" / "simulators.json").exists()
    assert started and started[0].servers == []  # everything it started is stopped
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_unknown_simulator_name_is_a_clean_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [SYNCHRONIZER, "simulators", "--only", "no-such-service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no simulator named ['no-such-service']" in result.stderr
    assert "Traceback" not in result.stderr
