"""Export a project's judgments as a dataset (with its dataset card) into a folder.

python manage.py export_data --project 1 --shape pairs --format hf out/pairs
python manage.py export_data --project 1 --shape judgments --format parquet --min-agreement 0.7 --split train out/j
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.exporters import (
    FORMATS,
    MEDIA_MODES,
    PAIR_FORMS,
    SHAPES,
    TIE_POLICIES,
    ExportInvalid,
    export_request_parse,
    export_to_folder,
)
from annotation.models import Project


class Command(BaseCommand):
    help = "Export judgments (pairs, rankings, raw judgments or consensus) as JSON Lines, CSV, Parquet or HF datasets."

    def add_arguments(self, parser):
        parser.add_argument("path", help="folder to write into (created; files in it are overwritten)")
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--shape", choices=SHAPES, required=True)
        parser.add_argument("--format", dest="file_format", choices=FORMATS, required=True)
        parser.add_argument("--form", choices=PAIR_FORMS, default="standard", help="pairs: text or chat messages")
        parser.add_argument("--ties", choices=TIE_POLICIES, default="drop", help="pairs: drop ties or keep as 0.5")
        parser.add_argument("--margin-scale", type=float, default=1.0)
        parser.add_argument("--media", choices=MEDIA_MODES, default="urls")
        parser.add_argument("--date-from")
        parser.add_argument("--date-to")
        parser.add_argument("--annotators", help="comma-separated usernames")
        parser.add_argument("--rounds", help="comma-separated round ids ('none': comparisons no round made)")
        parser.add_argument("--split", choices=["train", "eval"])
        parser.add_argument("--min-agreement", type=float)
        parser.add_argument("--gold", choices=["exclude", "include", "only"], default="exclude")

    def handle(self, *, path, project, shape, file_format, verbosity, **o):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        filters = {k: o[k] for k in ("date_from", "date_to", "annotators", "rounds", "split", "min_agreement", "gold")}
        try:
            request = export_request_parse(
                shape=shape,
                file_format=file_format,
                filters=filters,
                options={"form": o["form"], "ties": o["ties"], "margin_scale": o["margin_scale"]},
                media=o["media"],
            )
        except ExportInvalid as exc:
            raise CommandError(str(exc)) from exc
        total = request.filters.judgments(target).count()
        bar = tqdm(total=total, unit=" judgments", file=sys.stderr, disable=verbosity == 0)
        export = export_to_folder(target, request, path, progress=lambda done: bar.update(done - bar.n))
        bar.close()
        self.stdout.write(json.dumps({k: v for k, v in export.stats.numbers().items() if k in _SUMMARY}))


_SUMMARY = ("rows", "judgments", "comparisons", "prompts", "annotators")
