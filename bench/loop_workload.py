"""The workload of ``round_bench.py`` and ``flywheel_bench.py``: a text project of hh-rlhf first-turn prompts.

**hh-rlhf first turns** (``training/data/hh-rlhf/harmless-base_test.public.jsonl``, MIT): the 275 rows whose two
dialogues have a single human turn. The prompt is that turn (about 60 characters, 15–20 tokens: short, so CPU
generation is about the answers, not the prompt), the candidates are the two hh-rlhf answers to it, one comparison
per prompt. Rows are ordered by the SHA-256 of their prompt; the first ``eval_prompts`` are the eval split, the
next ``train_prompts`` the train split. The flywheel's hidden judge (``manage.py hidden_preference_train``) is trained
on the same file, so it reads these prompts in its own domain.

Django runs in the calling process with a var folder of its own (``TANDEM_VAR_DIR``, SQLite under it); the
converted SmolLM2 stays in the checkout's ``var/models`` (``training.ml.backbones``), shared by every var folder.
Nothing here is a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT / "training" / "data" / "hh-rlhf" / "harmless-base_test.public.jsonl"
WORKLOAD = "hh-rlhf harmless-base first turns (single-turn rows, prompt = the human turn)"


def setup_env(threads: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(threads)


def hh_first_turns() -> list[dict]:
    """``[{"prompt", "chosen", "rejected"}]``, one per distinct single-turn prompt, ordered by the prompt's hash."""
    rows, seen = [], set()
    for line in HH.read_text().splitlines():
        row = json.loads(line)
        if row["chosen"].count("\n\nHuman:") != 1 or row["rejected"].count("\n\nHuman:") != 1:
            continue
        head_c, _, chosen = row["chosen"].partition("\n\nAssistant:")
        head_r, _, rejected = row["rejected"].partition("\n\nAssistant:")
        prompt = head_c.removeprefix("\n\nHuman:").strip()
        chosen, rejected = chosen.strip(), rejected.strip()
        if head_c != head_r or not prompt or not chosen or not rejected or chosen == rejected or prompt in seen:
            continue
        seen.add(prompt)
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return sorted(rows, key=lambda r: hashlib.sha256(r["prompt"].encode()).hexdigest())


def django_setup(var_dir: Path) -> None:
    """Django on a fresh SQLite database in ``var_dir`` (call once per process, before any Django import)."""
    os.environ["TANDEM_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DEBUG", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def hh_project(*, var_dir: Path, eval_prompts: int, train_prompts: int, training_settings: dict):
    """A text project of hh-rlhf first turns, imported through the real bundle importer."""
    from django.contrib.auth import get_user_model

    from annotation.importers import import_file
    from annotation.models import Membership, Modality, Project, Role

    rows = hh_first_turns()
    if eval_prompts + train_prompts > len(rows):
        raise ValueError(f"the workload has {len(rows)} prompts; asked for {eval_prompts} eval + {train_prompts} train")
    owner, _ = get_user_model().objects.get_or_create(username="bench-owner")
    project = Project.objects.create(
        name="bench: hh-rlhf first turns",
        modality=Modality.TEXT,
        schema={"arity": 2, "allow_tie": True, "rationale": "optional"},
        overlap=1,
        created_by=owner,
        training_settings=training_settings,
    )
    Membership.objects.create(project=project, user=owner, role=Role.ADMIN)
    bundle = var_dir / "hh_bundle.jsonl"
    with bundle.open("w") as f:
        for n, row in enumerate(rows[: eval_prompts + train_prompts]):
            pid = f"hh-{n:03d}"
            line = {
                "id": pid,
                "text": row["prompt"],
                "split": "eval" if n < eval_prompts else "train",
                "candidates": [
                    {"id": f"{pid}-chosen", "text": row["chosen"]},
                    {"id": f"{pid}-rejected", "text": row["rejected"]},
                ],
                "comparisons": "pairs",
            }
            f.write(json.dumps(line) + "\n")
    import_file(project=project, kind="bundle", path=bundle)
    return project


def label_as_hh(project, count: int) -> int:
    """``count`` judgments through the queue's services (claim, submit) by one annotator who answers as the hh-rlhf
    crowd worker did (the ``chosen`` answer wins). Returns how many were given (fewer if the queue runs dry)."""
    from django.contrib.auth import get_user_model

    from annotation.judgments import JudgmentInput, judgment_submit
    from annotation.models import Candidate, Comparison, Membership, Role
    from annotation.queue import comparison_claim

    user, _ = get_user_model().objects.get_or_create(username="bench-annotator")
    Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
    given = 0
    while given < count:
        claim = comparison_claim(project_id=project.pk, annotator_id=user.pk)
        if claim is None:
            break
        comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
        ids = list(comparison.candidate_ids)
        external = dict(Candidate.objects.filter(pk__in=ids).values_list("pk", "external_id"))
        winner = next(i for i in ids if external[i].endswith("-chosen"))
        judgment_submit(
            comparison_id=comparison.pk,
            annotator_id=user.pk,
            answer=JudgmentInput(winner=winner, shown_order=ids),
            idempotency_key=f"bench-{comparison.pk}",
        )
        given += 1
    return given


def machine() -> dict:
    import platform
    import subprocess

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {
        "date": subprocess.run(["date", "-Iseconds"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }
