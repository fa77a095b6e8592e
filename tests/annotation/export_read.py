"""Read an export's rows back, whatever its format (the way a user of the file would)."""

import csv
import json
from pathlib import Path

from annotation.exporters import DATA_FILE


def read_rows(folder: Path, file_format: str) -> list[dict]:
    path = Path(folder) / DATA_FILE[file_format]
    if file_format == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if file_format == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    import datasets

    return datasets.load_from_disk(str(folder)).to_list()


def card(folder: Path) -> str:
    return (Path(folder) / "README.md").read_text(encoding="utf-8")
