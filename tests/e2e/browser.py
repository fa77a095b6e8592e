"""How Tandem starts Chromium for its browser tests and bench/ui_bench.py: Debian's
binary, never one Playwright downloads, with the flags this offline machine needs
(without the background-networking ones Chromium keeps dialling Google's hosts)."""

import os

CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
