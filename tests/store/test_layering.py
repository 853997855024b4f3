"""The store's architecture rules, checked on the source: maggma internals live in one backend module only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
#: the one module allowed below maggma's public Store API (montydb/sqlite quirks)
BACKEND = ROOT / "mfal" / "store" / "embedded.py"
INTERNALS = re.compile(r"\._collection\b|_files_collection|_chunks_collection|\._coll\b|\._files_store\b")


def test_no_maggma_internals_outside_the_one_backend_module():
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for package in ("mfal", "flows")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != BACKEND
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if INTERNALS.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_importing_the_store_package_does_not_import_the_backends():
    code = "import sys, mfal.store; print(sorted(m for m in ('maggma', 'montydb', 'pymongo') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
