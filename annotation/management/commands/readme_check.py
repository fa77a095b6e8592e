"""Run the README's shell examples, as printed, against a running demo (``bin/demo --check`` and
tests/test_readme.py call it).

Every fenced ``sh`` block runs, in README order, in one bash session started in the repository root (so a variable
one block sets is there for the next, as in a reader's terminal), under ``set -euo pipefail``. A block that cannot
run against the demo says why on the line before its fence::

    <!-- readme-check: skip: needs Docker -->

The only change made to the printed text: when the demo serves on another port than the README's 8000, the
``localhost:8000`` and ``127.0.0.1:8000`` in the examples are pointed at it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

README = Path(settings.BASE_DIR) / "README.md"
_FENCE = re.compile(r"^```sh\s*$")
_SKIP = re.compile(r"^<!--\s*readme-check:\s*skip:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class ShellExample:
    line: int  # of the opening fence, 1-based
    text: str
    skip_reason: str | None


def readme_shell_examples(text: str) -> list[ShellExample]:
    """The ``sh`` blocks of a Markdown text, each with the reason it is skipped (None: it runs)."""
    lines = text.splitlines()
    examples, i = [], 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise ValueError(f"README line {i + 1}: a sh block is never closed")
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = _SKIP.match(before)
            examples.append(ShellExample(i + 1, "\n".join(lines[i + 1 : end]), skip["reason"] if skip else None))
            i = end
        i += 1
    return examples


def readme_script(examples: list[ShellExample], *, url: str) -> str:
    """One bash script of the examples that run, each announced with its README line."""
    port = urlsplit(url).port or 80
    parts = ["set -euo pipefail"]
    for example in examples:
        if example.skip_reason is None:
            body = example.text.replace("localhost:8000", f"localhost:{port}").replace(
                "127.0.0.1:8000", f"127.0.0.1:{port}"
            )
            parts += [f"echo '--- README line {example.line}' >&2", body]
    return "\n".join(parts) + "\n"


class Command(BaseCommand):
    help = "Run the README's shell examples against a running demo; fails on the first that fails."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *, url, timeout, **options):
        examples = readme_shell_examples(README.read_text())
        script = readme_script(examples, url=url)
        done = subprocess.run(  # noqa: S603 - bash runs the repository's own README examples
            ["bash", "-c", script],  # noqa: S607
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.stdout.write(done.stdout)
        if done.returncode != 0:
            failed = re.findall(r"--- README line (\d+)", done.stderr)
            where = f"the example at README line {failed[-1]}" if failed else "the README's examples"
            raise CommandError(f"{where} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        ran = sum(e.skip_reason is None for e in examples)
        skipped = "; ".join(f"line {e.line}: {e.skip_reason}" for e in examples if e.skip_reason)
        self.stdout.write(f"README: {ran} shell examples ran; skipped {skipped or 'none'}.")
