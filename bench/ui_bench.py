"""UI benchmark: time from submit to the next task being interactive, in a real browser.

Prints figures; it is not a test.

Workload
--------
1. A fresh SQLite database (or ``--database-url``) under ``--var-dir`` with one
   text project of ``--tasks`` + warm-up comparisons (two candidates of ~1,200
   characters each, the schema of the demo: strength, two criteria, five span
   categories), one annotator, migrated and seeded in-process.
2. The app as in production: ``collectstatic``, then gunicorn (``config/gunicorn.py``,
   ``--workers`` × ``--threads``, DEBUG off, assets from WhiteNoise) on 127.0.0.1.
3. Debian's Chromium (Playwright, ``/usr/bin/chromium``) signs in through the
   login page and opens the workbench. For each task it presses ``1`` (a winner),
   then ``Ctrl+Enter``; the page records ``performance.now()`` when the key goes
   down (a capture listener, before the app sees it) and again at the first
   animation frame after the next task's DOM is in place (React has committed it
   and its key handler is attached in the same commit's effects), which is when
   the next key press would act on it. Before each submit it waits, as an
   annotator reading the task would, until the workbench has fetched the task
   after it (``next?ahead=1``) and saved the previous answer; ``--back-to-back``
   submits at once instead (an annotator faster than the prefetch: the workbench
   then waits for the save and asks for the next task, two round trips).
4. Prints median, p95 and max over ``--tasks`` submits (after ``--warmup``).
   Target: p95 ≤ 150 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 - after the path is set

PASSWORD = "ui-bench-password"

# Measured in the page: keydown of Ctrl+Enter → first frame after a different task is in the DOM.
MEASURE_JS = """
(before) => { window.__uiBenchResult = new Promise((resolve) => {
  const start = { t: null };
  const onKey = (e) => { if (e.key === "Enter" && e.ctrlKey && start.t === null) start.t = performance.now(); };
  window.addEventListener("keydown", onKey, { capture: true });
  const done = () => {
    const task = document.querySelector("[data-testid=task]");
    const empty = document.querySelector("[data-testid=queue-empty]");
    if (start.t !== null && ((task && task.dataset.comparison !== before) || empty)) {
      observer.disconnect();
      window.removeEventListener("keydown", onKey, { capture: true });
      requestAnimationFrame(() => resolve(performance.now() - start.t));
    }
  };
  const observer = new MutationObserver(done);
  observer.observe(document.body, { subtree: true, childList: true, attributes: true });
}); }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(n: int) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotation.management.commands.demo_load import SCHEMA as DEMO_SCHEMA
    from annotation.models import Candidate, Comparison, Membership, Project, Prompt, Role

    call_command("migrate", verbosity=0)
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-annotator")
    user.set_password(PASSWORD)
    user.save()
    Project.objects.filter(name="UI bench").delete()
    project = Project.objects.create(
        name="UI bench",
        schema=DEMO_SCHEMA,  # the demo's: criteria, strength, five span categories
        guidelines="# Guidelines\n\nPrefer grounded answers.",
    )
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    body = "The answer cites the passage and explains it step by step. 🙂 " * 20
    for i in range(n):
        prompt = Prompt.objects.create(project=project, external_id=f"p{i}", text=f"Question {i}: why?")
        cands = [
            Candidate.objects.create(project=project, prompt=prompt, external_id=f"c{i}-{j}", text=f"{j}: {body}")
            for j in range(2)
        ]
        Comparison.objects.create(
            project=project,
            prompt=prompt,
            external_id=f"cmp{i}",
            candidate_ids=[c.pk for c in cands],
            wanted=1,
            priority=n - i,
        )
    return project.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "ui-bench"))
    parser.add_argument("--database-url", default=None, help="default: SQLite under --var-dir")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--back-to-back", action="store_true", help="submit without waiting for the prefetch")
    args = parser.parse_args()

    var = Path(args.var_dir)
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {
        **os.environ,
        "TANDEM_VAR_DIR": str(var),
        "SECRET_KEY": "ui-bench-not-a-secret",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    else:
        env.pop("DATABASE_URL", None)
    os.environ.clear()
    os.environ.update(env)  # the seeding below runs Django in this process, with the server's settings
    project_id = seed(args.tasks + args.warmup)
    python = sys.executable
    subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

    port = free_port()
    server_env = {
        **env,
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": str(args.workers),
        "WEB_THREADS": str(args.threads),
    }
    gunicorn = Path(python).with_name("gunicorn")
    log = open(var / "gunicorn.log", "w")  # closed at the end
    server = subprocess.Popen(
        [str(gunicorn), "-c", "config/gunicorn.py", "--access-logfile", "-", "config.wsgi"],
        cwd=ROOT,
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        times = run_browser(args, base, project_id)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()

    measured = sorted(times[args.warmup :])
    p95 = measured[max(0, round(0.95 * len(measured)) - 1)]
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · {platform.platform()}")
    print(f"database: {'postgres' if args.database_url else 'sqlite'} · gunicorn {args.workers}×{args.threads}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("pace: " + ("back to back (no prefetch ready)" if args.back_to_back else "each task's prefetch ready"))
    print(f"submit → next task interactive over {len(measured)} tasks (after {args.warmup} warm-up):")
    print(f"  median {statistics.median(measured):.1f} ms · p95 {p95:.1f} ms · max {measured[-1]:.1f} ms")
    print(f"  target p95 ≤ 150 ms: {'met' if p95 <= 150 else 'NOT met'}")


def run_browser(args, base: str, project_id: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(base_url=base, viewport={"width": 1400, "height": 1000})
        page.goto("/")
        page.get_by_label("Username").fill("bench-annotator")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("signed-in-as").wait_for()
        prefetched = []
        page.on("response", lambda r: "ahead=1" in r.url and prefetched.append(r.url))
        page.goto(f"/projects/{project_id}/label")
        for i in range(args.tasks + args.warmup):
            task = page.get_by_test_id("task")
            task.wait_for()
            before = task.get_attribute("data-comparison")
            if not args.back_to_back:  # one prefetch per task shown, after the previous answer is saved
                page.get_by_test_id("saving").wait_for(state="detached")
                deadline = time.monotonic() + 10
                while len(prefetched) <= i:
                    if time.monotonic() > deadline:  # e.g. frontend/dist built before the prefetch existed
                        raise SystemExit("No prefetch (next?ahead=1) in 10 s: is the app built? Run `make install`.")
                    page.wait_for_timeout(5)
            page.keyboard.press("1")
            page.evaluate(MEASURE_JS, before)  # arms the measurement; returns at once
            page.keyboard.press("Control+Enter")
            times.append(page.evaluate("window.__uiBenchResult"))
        page.get_by_test_id("queue-empty").wait_for()
        browser.close()
    return times


if __name__ == "__main__":
    main()
