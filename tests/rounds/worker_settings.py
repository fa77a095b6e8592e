"""Settings for a Celery worker subprocess started by the tests: the project's settings plus the test's
artifact folder and fast progress reports (settings the test process changes in memory do not reach it)."""

import os
from pathlib import Path

from config.settings import *  # noqa: F403

TRAINING_ARTIFACTS_DIR = Path(os.environ["TRAINING_ARTIFACTS_DIR"])
TRAINING_PROGRESS_INTERVAL = 0.2
