"""Hostile requests against `spillover serve` started through the installed entry point.

tests/test_serve.py drives the app in a thread, part by part; this starts the real command in a
subprocess on a free loopback port, as a user would, and sends it a bounded set of bad requests
(each a single request with a timeout), then stops it with Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import httpx
import pytest
from _hostile import ENTRY

BODY_CAP = 64 * 1024
HI = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = free_port()
    cwd = tmp_path_factory.mktemp("serve")
    proc = subprocess.Popen([*ENTRY, "serve", "--model", "tiny", "--port", str(port), "--max-body-bytes", str(BODY_CAP), "--max-n", "4"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # bounded wait for the server to come up
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"spillover serve did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def post(base: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", content=content, headers={"content-type": "application/json"}, timeout=60)


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b" " * (BODY_CAP + 1), 413, "request_too_large"),
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, None),
        (json.dumps({"model": "tiny", "messages": "hi"}).encode(), 400, "invalid_value"),
        (json.dumps({"model": "tiny", "messages": []}).encode(), 400, None),
        (b'{"model": "tiny", "messages": %s, "temperature": Infinity}' % json.dumps(HI).encode(), 400, "invalid_value"),
        (json.dumps({"model": "tiny", "messages": HI, "max_tokens": -5}).encode(), 400, "invalid_value"),
        (json.dumps({"model": "tiny", "messages": HI, "max_tokens": 10**9}).encode(), 400, None),
        (json.dumps({"model": "tiny", "messages": HI, "n": 5}).encode(), 400, "n_too_large"),
        (json.dumps({"model": "tiny", "messages": HI, "top_p": 0}).encode(), 400, "invalid_value"),
        (("[" * 50_000).encode(), 400, "invalid_json"),
    ],
    ids=["body-over-cap", "not-json", "array-body", "messages-string", "messages-empty", "temperature-inf", "max-tokens-negative",
         "max-tokens-huge", "n-over-limit", "top-p-zero", "nested-json"],
)
def test_bad_requests_get_a_4xx_with_a_json_error_and_the_server_lives_on(served, body, status, code):
    proc, base = served
    r = post(base, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and (code is None or error["code"] == code)
    assert proc.poll() is None and httpx.get(f"{base}/health", timeout=10).status_code == 200


def test_a_good_request_is_served_after_the_bad_ones_and_ctrl_c_stops_the_server(served):
    proc, base = served
    r = post(base, json.dumps({"model": "tiny", "messages": HI, "max_tokens": 3, "temperature": 1.0, "seed": 0}).encode())
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]  # shut down gracefully, reported as every command reports Ctrl-C
    assert [line for line in err.splitlines() if line.startswith("error:")] == ["error: interrupted (Ctrl-C); finished files are kept, and `run` and `train` resume where they stopped when rerun"]
    assert "Traceback" not in err
