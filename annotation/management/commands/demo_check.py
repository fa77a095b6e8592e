"""Check a running embedded Tandem end to end: the API labels a task over HTTP,
and the Celery worker runs an import job. Used by ``bin/demo --check`` (and CI)."""

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from annotation import importers
from annotation.models import ImportJob, ImportStatus, Project
from annotation.tasks import import_run_task

from .demo_load import DIGITS_PROJECT_NAME
from .demo_load import PROJECT_NAME as DEMO_PROJECT_NAME


class Command(BaseCommand):
    help = "Check that a running Tandem serves the API and that its worker runs tasks."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *, url, timeout, **options):
        token = self._call(url, "POST", "/api/v1/auth/token/", {"username": "annotator", "password": "tandem-demo"})[
            "token"
        ]
        project = Project.objects.filter(name=DEMO_PROJECT_NAME).order_by("id").first()
        if project is None:
            raise CommandError("The demo project is missing: run `manage.py demo_load` first.")
        task = self._call(url, "GET", f"/api/v1/projects/{project.pk}/next/", token=token)
        if task is None:
            raise CommandError("The demo annotator got no task from the demo project.")
        answer = {"winner": task["candidates"][0]["id"], "rationale": "demo check"}
        self._call(url, "POST", f"/api/v1/comparisons/{task['comparison']}/judgments/", answer, token=token)
        self.stdout.write(f"API: labelled comparison {task['comparison']} as the demo annotator")
        self._check_image_project(url, token)
        self._check_web_app(url)

        with TemporaryDirectory() as tmp:
            path = Path(tmp) / "check.jsonl"
            row = {"id": f"check-{uuid.uuid4().hex[:8]}", "text": "Demo check prompt"}
            path.write_text(json.dumps(row) + "\n")
            with path.open("rb") as fh:
                job = importers.import_job_create(
                    project=project, kind="prompts", uploaded_file=File(fh, name=path.name), original_name=path.name
                )
        import_run_task.delay(job.pk)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED):
                break
            time.sleep(0.5)
        if job.status != ImportStatus.SUCCEEDED:
            raise CommandError(f"The worker did not finish import job {job.pk} (status {job.status}): {job.message}")
        ImportJob.objects.filter(pk=job.pk).delete()
        self.stdout.write(f"Worker: ran import job {job.pk} ({job.result})")

    def _check_image_project(self, base, token):
        """The image demo serves a task whose candidates are images, and their URLs serve PNGs."""
        project = Project.objects.filter(name=DIGITS_PROJECT_NAME).order_by("id").first()
        if project is None:
            raise CommandError("The image demo project is missing: run `manage.py digits_demo` first.")
        task = self._call(base, "GET", f"/api/v1/projects/{project.pk}/next/", token=token)
        urls = [c["media_url"] for c in (task or {}).get("candidates", [])]
        if not urls or not all(urls):
            raise CommandError(f"The image demo project answered `next` without media URLs: {task!r}")
        with urllib.request.urlopen(urls[0], timeout=30) as response:  # noqa: S310 — our own local server
            head = response.read(8)
        if head != b"\x89PNG\r\n\x1a\n":
            raise CommandError(f"{urls[0]} does not serve a PNG (starts {head!r}).")
        self.stdout.write(f"API: the image demo serves comparison {task['comparison']} with {len(urls)} PNG candidates")

    def _check_web_app(self, base):
        """The front door serves the built web app, and its script loads."""
        with urllib.request.urlopen(base + "/", timeout=30) as response:  # noqa: S310 — our own local server
            page = response.read().decode()
        script = re.search(r'src="(/static/app/assets/[^"]+\.js)"', page)
        if script is None:
            raise CommandError(f"/ does not serve the web app (run `make install` to build it): {page[:300]!r}")
        with urllib.request.urlopen(base + script.group(1), timeout=30) as response:  # noqa: S310
            size = len(response.read())
        self.stdout.write(f"Web app: / serves the page and its script ({size} bytes)")

    def _call(self, base, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 — our own local server
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{method} {path} answered {exc.code}: {exc.read()[:500]!r}") from exc
        return json.loads(raw) if raw else None
