"""The README's shell examples run as printed against a running demo (annotation's ``readme_check``, which
``make demo-check`` also runs)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from annotation.management.commands.readme_check import README, readme_shell_examples

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_runs_or_says_why_not_and_none_needs_what_debian_lacks_or_a_guessed_id():
    examples = readme_shell_examples(README.read_text())
    runs = [e for e in examples if e.skip_reason is None]
    assert len(runs) >= 3
    assert {e.skip_reason for e in examples if e.skip_reason} == {
        "these start the demo the check runs against",
        "your own image files (cats.zip, cat-1.png, cat-2.jpg)",
        "needs Docker and a production .env",
    }
    for example in runs:
        assert "uuidgen" not in example.text
        assert "projects/1/" not in example.text and "--project 1 " not in example.text, example.line


def test_a_skip_needs_a_reason_on_the_line_before_the_fence():
    text = "<!-- readme-check: skip: needs a GPU -->\n```sh\nnvidia-smi\n```\n\n```sh\necho hi\n```\n"
    assert [(e.line, e.text, e.skip_reason) for e in readme_shell_examples(text)] == [
        (2, "nvidia-smi", "needs a GPU"),
        (6, "echo hi", None),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the examples need curl and jq")
def test_the_readmes_examples_run_against_a_running_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "DJANGO_"))}
    env |= {"DEBUG": "1", "TANDEM_VAR_DIR": str(tmp_path / "var")}
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput", "-v", "0"], ["demo_load"]):
        subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        done = subprocess.run(
            [*manage, "readme_check", "--url", f"http://127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "shell examples ran" in done.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
