"""``servebench serve TARGET --port P`` in the foreground, as a person would run it."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time

from targets.payloads import jpeg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_curl_style_requests_and_stops_on_ctrl_c() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pytest_servebench.cli", "serve",
                             "mobilenet_v2", "--port", str(port), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no /health in 60 s"
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/predict", body=jpeg(), headers={"content-type": "image/jpeg"})
        resp = conn.getresponse()
        assert resp.status == 200 and len(json.loads(resp.read())["classes"]) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_serve_unknown_target_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "serve", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr


def test_serve_refuses_a_non_loopback_host_without_allow_remote() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "serve",
                           "mobilenet_v2", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a loopback address" in proc.stderr
    assert "--allow-remote" in proc.stderr


def test_serve_refuses_a_deadline_that_is_not_positive() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "serve",
                           "mobilenet_v2", "--header-timeout", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--header-timeout must be a positive" in proc.stderr
