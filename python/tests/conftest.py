"""Puts `python/` on sys.path so tests import `sluice_components` and `sluice_runner`."""

import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PYTHON_DIR))
