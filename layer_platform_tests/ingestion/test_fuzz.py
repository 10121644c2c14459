"""A fixed, derandomized fuzzing budget in the suite: hostile folders of every format.

The same generator runs longer on demand (``python -m layer_platform_tests.ingestion.fuzz
--cases N``); its figures are in docs/reliability.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from layer_platform_tests.ingestion import fuzz
from layer_platform_tests.ingestion.sandbox import Outcome, violations

#: Cases per format in the suite's run (five kinds: ~10 s on one core).
SUITE_CASES_PER_FORMAT = int(os.environ.get("LAYER_FUZZ_CASES_PER_FORMAT", "60"))


def test_hostile_folders_of_every_format_keep_the_invariants(tmp_path: Path) -> None:
    outcomes, found, bait_read = fuzz.run(SUITE_CASES_PER_FORMAT, tmp_path)
    assert len(outcomes) == SUITE_CASES_PER_FORMAT * len(fuzz.FORMATS)
    assert found == {}, found
    assert not bait_read, "a header made a reader open a file outside the scan folders"
    refused = {o.folder.split("-")[0] for o in outcomes if o.quarantined}
    assert refused == set(fuzz.FORMATS), "every format's generator reaches the refusals"


def test_generation_is_reproducible() -> None:
    assert fuzz.generate(3) == fuzz.generate(3)


def test_the_bait_shows_a_read(tmp_path: Path) -> None:
    """The bait check can fail: reading a bait file (as C code would) moves its atime."""
    fuzz.write_cases(tmp_path, [])
    assert not fuzz.bait_read(tmp_path)
    (tmp_path / fuzz.BAIT).read_bytes()
    assert fuzz.bait_read(tmp_path)


def test_the_invariants_can_fail() -> None:
    clean = Outcome("x", 0, 1, "refused", "", [], 1.0)
    assert violations(clean) == []
    assert violations(Outcome("x", 0, 0, "", "RecursionError", [], 1.0))
    assert violations(Outcome("x", 1, 1, "", "", [], 1.0))
    assert violations(Outcome("x", 0, 1, "", "", ["/etc/passwd"], 1.0))
    assert violations(Outcome("x", 0, 1, "", "", [], 10_000.0))
    assert violations(Outcome("x", 0, 1, "reading failed (MemoryError)", "", [], 1.0))
