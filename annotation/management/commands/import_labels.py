"""Import existing labels — preference pairs or raw judgments — all or nothing.

python manage.py import_labels --project 1 --kind pairs hh-rlhf.jsonl           # seed from a public dataset
python manage.py import_labels --project 1 --kind judgments --format hf export/  # a Tandem export, back in
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.importers.labelled import LABELLED_FORMATS, LABELLED_KINDS, labelled_import
from annotation.importers.rejection import ImportRejected
from annotation.models import Project

_EXTENSIONS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class Command(BaseCommand):
    help = "Import preference pairs or judgments (JSONL, CSV, Parquet, HF dataset on disk); nothing on a bad row."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the file, or the folder of a dataset saved with save_to_disk")
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--kind", choices=LABELLED_KINDS, required=True)
        parser.add_argument("--format", dest="file_format", choices=LABELLED_FORMATS)
        parser.add_argument("--split", default="train", help="hf: which split of a DatasetDict")
        parser.add_argument("--annotator", help="pairs without an annotator column: credit this user")

    def handle(self, *, path, project, kind, file_format, split, annotator, **options):
        from pathlib import Path

        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        file_format = file_format or ("hf" if Path(path).is_dir() else _EXTENSIONS.get(Path(path).suffix))
        if file_format is None:
            raise CommandError("Cannot tell the format from the name; give --format.")
        user = None
        if annotator:
            user = get_user_model().objects.filter(username=annotator).first()
            if user is None:
                raise CommandError(f"No user named {annotator!r}.")
        try:
            counts = labelled_import(
                project=target, kind=kind, path=path, file_format=file_format, options={"split": split}, user=user
            )
        except ImportRejected as exc:
            for error in exc.errors:
                where = f"line {error['line']}" if error["line"] is not None else "file"
                field = f" [{error['field']}]" if error["field"] else ""
                self.stderr.write(f"{where}{field}: {error['message']}")
            raise CommandError(exc.message) from exc
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items()))
