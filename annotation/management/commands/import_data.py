"""Import a JSON Lines, CSV or Parquet file into a project, all or nothing.

python manage.py import_data --project 1 --kind bundle data/bundle.jsonl
"""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.importers import IMPORT_FORMATS, IMPORT_KINDS, ImportRejected, import_file
from annotation.models import Project


class Command(BaseCommand):
    help = "Import prompts, candidates, comparisons or bundles from a file; nothing is written if any row is bad."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the file to import")
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--kind", choices=IMPORT_KINDS, required=True)
        parser.add_argument(
            "--format", dest="file_format", choices=IMPORT_FORMATS, help="taken from the file name when left out"
        )
        parser.add_argument(
            "--comparisons",
            choices=["pairs", "groups"],
            help="bundles: build these comparisons for rows that have no 'comparisons' column",
        )

    def handle(self, *, path, project, kind, file_format, comparisons, verbosity, **options):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        bar = _ProgressBar(enabled=verbosity > 0)
        try:
            counts = import_file(
                project=target,
                kind=kind,
                path=path,
                file_format=file_format,
                options={"comparisons": comparisons} if comparisons else None,
                progress=bar,
            )
        except ImportRejected as exc:
            bar.close()
            for error in exc.errors:
                where = f"line {error['line']}" if error["line"] is not None else "file"
                field = f" [{error['field']}]" if error["field"] else ""
                self.stderr.write(f"{where}{field}: {error['message']}")
            raise CommandError(exc.message) from exc
        bar.close()
        for table, count in counts.items():
            self.stdout.write(f"{table}: {count['created']} created, {count['unchanged']} unchanged")


class _ProgressBar:
    """One tqdm bar per import phase (validating, writing), fed by the importer's progress calls."""

    def __init__(self, *, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.phase = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled or phase == "reading":
            return
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=total, desc=phase, unit=" rows", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
