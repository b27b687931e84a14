"""``servebench load`` for people: a file or a named payload as the body, its content type and
headers, and an exit status and message that say when every request failed and why."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_servebench.cli import main
from pytest_servebench.cli.load import parse_header


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/predict"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        reply = b'{"ok": true}' if self.server.status == 200 else b'{"error": "BadInput"}'
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def _serve(status: int) -> Iterator[Recorder]:
    server = Recorder(status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from _serve(200)


@pytest.fixture
def refuser() -> Iterator[Recorder]:
    yield from _serve(415)


def test_data_from_a_file_with_its_type_and_headers(
        recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picture = tmp_path / "cat.jpg"
    picture.write_bytes(b"\xff\xd8not really a jpeg")
    assert main(["load", recorder.url, "-n", "5", "--data", f"@{picture}",
                 "-H", "X-Trace: abc", "--header", "Authorization: Bearer t", "--json"]) == 0
    assert len(recorder.seen) == 5
    headers, body = recorder.seen[0]
    assert body == picture.read_bytes() and headers["content-type"] == "image/jpeg"
    assert headers["x-trace"] == "abc" and headers["authorization"] == "Bearer t"
    assert json.loads(capsys.readouterr().out)["count"] == 5


def test_content_type_overrides_and_text_is_text(recorder: Recorder) -> None:
    assert main(["load", recorder.url, "-n", "2", "--data", "hello",
                 "--content-type", "application/x-custom"]) == 0
    assert main(["load", recorder.url, "-n", "2", "--data", "hello"]) == 0
    types = [h["content-type"] for h, _ in recorder.seen]
    assert types == ["application/x-custom"] * 2 + ["text/plain; charset=utf-8"] * 2
    assert {b for _, b in recorder.seen} == {b"hello"}


def test_a_named_payload_from_the_model_provider(recorder: Recorder) -> None:
    pytest.importorskip("PIL")
    assert main(["load", recorder.url, "-n", "3", "--payload", "jpeg:64"]) == 0
    headers, body = recorder.seen[0]
    assert headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert len({b for _, b in recorder.seen}) == 1


def test_an_unknown_payload_is_a_usage_error(recorder: Recorder,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["load", recorder.url, "-n", "3", "--payload", "png:3"])
    assert exited.value.code == 2
    assert "unknown payload 'png'" in capsys.readouterr().err and recorder.seen == []


def test_every_request_failed_exits_1_naming_the_errors(
        refuser: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", refuser.url, "-n", "7", "--json"]) == 1
    captured = capsys.readouterr()
    assert "the request body is empty" in captured.err
    assert "every request failed (7 of 7): http_415 x7" in captured.err
    out = json.loads(captured.out, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert out["p50_s"] is None and out["errors"] == {"http_415": 7}


def test_a_bad_header_or_file_is_a_usage_error(recorder: Recorder, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="Name: value"):
        parse_header("no colon here")
    with pytest.raises(SystemExit):
        main(["load", recorder.url, "--data", f"@{tmp_path / 'missing.jpg'}"])
    assert "no such file" in capsys.readouterr().err and recorder.seen == []


def test_wait_for_waits_for_a_server_starting_and_gives_up_on_none(
        capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    import time

    from pytest_servebench.cli.load import wait_until_listening

    with socket.socket() as probe:  # a port nothing listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    assert main(["load", url, "-n", "2", "--wait-for", "0.3"]) == 2
    assert "not ready after 0.3s" in capsys.readouterr().err

    listener = socket.socket()

    def start_late() -> None:
        time.sleep(0.5)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        assert 0.4 < wait_until_listening(url, timeout_s=10) < 5
    finally:
        thread.join()
        listener.close()


def test_the_readmes_first_load_command_runs_as_written(recorder: Recorder) -> None:
    """The README's quick start, its options as written, against a stand-in for the model
    server (the real one is tried by hand: ``servebench serve mobilenet_v2``)."""
    import shlex

    pytest.importorskip("PIL")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("Or, in a minute,", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    command = next(line for line in block.replace("\\\n", " ").splitlines()
                   if line.startswith("servebench load"))
    args = shlex.split(command)[1:]
    assert args[1] == "http://127.0.0.1:8080/predict"
    args[1] = recorder.url
    assert main(args) == 0
    assert len(recorder.seen) == 500 and recorder.seen[0][0]["content-type"] == "image/jpeg"


def test_the_locust_driver_sends_the_same_requests(
        recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    """``--driver locust --workers 2``: Locust's master and two workers send the seeded
    schedule with the body, type and headers asked, and the summary is ours."""
    if importlib.util.find_spec("locust") is None:  # importing it would gevent-patch us
        pytest.skip("the Locust driver needs locust")
    from pytest_servebench.workloads import OpenLoop

    assert main(["load", recorder.url, "--driver", "locust", "--workers", "2", "-r", "40",
                 "-d", "1", "--seed", "5", "--data", "hello", "-H", "X-Trace: abc",
                 "--json", "--no-progress"]) == 0
    expected = len(OpenLoop(rate=40, duration=1, seed=5).schedule())
    assert len(recorder.seen) == expected
    assert {(h["x-trace"], h["content-type"], b) for h, b in recorder.seen} == {
        ("abc", "text/plain; charset=utf-8", b"hello")}
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == expected and summary["success_ratio"] == 1.0
