"""The hostile-input suite, part 2 (issue 14): Ctrl-C, a failing OpenAI-compatible endpoint, both
entry points, and the modes of what we write. Through the installed script, in subprocesses."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from _hostile import (
    ENTRY,
    Case,
    assert_one_line_error,
    changed,
    make_inputs,
    outside,
    run,
    run_case,
    snapshot,
)

SECRET = "sk-test-0123456789abcdef"


class _EchoKey401(http.server.BaseHTTPRequestHandler):
    """An endpoint that refuses every key and, like some real ones, echoes the key it was sent."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sent = self.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {sent}", "type": "invalid_request_error"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(base_url: str) -> tuple[str, ...]:
    return ("eval", "--backend", "openai", "--base-url", base_url, "--api-key-env", "HOSTILE_KEY", "--model", "m",
            "--world", "world.yaml", "--out", "e")


def test_eval_openai_401_is_one_line_and_masks_the_echoed_key(refusing_endpoint, tmp_path):
    result = run_case(Case("openai-401", _eval(refusing_endpoint), "HTTP 401", owns=("e",)), tmp_path, env={"HOSTILE_KEY": SECRET})
    assert SECRET not in result.stdout + result.stderr
    assert "Incorrect API key provided: ***" in result.stderr  # the echo is there, the key is not


def test_eval_openai_endpoint_down_is_one_line(tmp_path):
    result = run_case(Case("openai-down", _eval(f"http://127.0.0.1:{_closed_port()}/v1"), "APIConnectionError", owns=("e",)), tmp_path,
                      env={"HOSTILE_KEY": SECRET})
    assert SECRET not in result.stdout + result.stderr and "fix: check that the server is up" in result.stderr


def test_module_and_script_entry_points_agree(tmp_path):
    make_inputs(tmp_path)
    args = ["docs", "stats", "array.jsonl"]
    script = run(args, tmp_path)
    module = run(args, tmp_path, entry=[sys.executable, "-m", "spillover"])
    assert (script.returncode, script.stderr) == (module.returncode, module.stderr) == (2, script.stderr)
    assert script.stderr.startswith("error: array.jsonl: line 1:") and script.stderr.count("\n") == 1


def test_no_arguments_prints_help_and_exits_2(tmp_path):
    result = run([], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "train" in result.stdout + result.stderr  # the command list


def test_ctrl_c_during_training_exits_130_with_one_line_and_no_done(tmp_path):
    """SIGINT once training runs (its loss log exists): exit 130, one `error:` line, no DONE."""
    make_inputs(tmp_path)
    before = snapshot(tmp_path)
    args = ["train", "sft", "--model", "tiny", "--data", "sft.jsonl", "--out", "o", "--max-len", "32", "--batch-size", "1",
            "--epochs", "100000", "--save-steps", "0", "--no-progress"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.Popen([*ENTRY, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "o" / "loss.jsonl").exists():  # the trainer opens its log as the loop starts
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert errors == [errors[0]] and "interrupted" in errors[0], stderr
    assert not (tmp_path / "o" / "DONE").exists()
    assert not outside(changed(before, snapshot(tmp_path)), ("o",))


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_outputs_respect_the_umask(umask, tmp_path):
    """Files and directories we write get the modes open() and mkdir() would give, not mkstemp's 0600."""
    make_inputs(tmp_path)
    result = run(["docs", "generate", "world.yaml", "--n", "3", "--out", "new/dir/d.jsonl"], tmp_path,
                 preexec_fn=lambda: os.umask(umask))
    assert_one_line_error(result, Case("ok", (), "", code=0))
    assert (tmp_path / "new/dir/d.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "new/dir").stat().st_mode & 0o777 == 0o777 & ~umask
