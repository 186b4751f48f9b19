"""The documents that comments and messages cite are in the repository, with the cited sections."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

#: How the code cites a section: "spec section 7", "dsen2cr_spec.md section 3",
#: "dsen2cr_spec.md`` sections 1-2", "field.md section 1", "field.md``, section 1".
CITATION = re.compile(
    r"(spec|dsen2cr_spec\.md|field\.md)[`,]*\s+sections?\s+(\d+)(?:\s*-\s*(\d+))?"
)


def _sections(doc: Path) -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\.", doc.read_text(encoding="utf-8"), re.M)}


def _citations() -> dict[str, set[int]]:
    cited: dict[str, set[int]] = {"dsen2cr_spec.md": set(), "field.md": set()}
    for path in [*(REPO / "src").rglob("*.py"), REPO / "README.md"]:
        for m in CITATION.finditer(path.read_text(encoding="utf-8")):
            doc = "field.md" if m[1] == "field.md" else "dsen2cr_spec.md"
            first = int(m[2])
            cited[doc].update(range(first, int(m[3] or first) + 1))
    return cited


def test_every_cited_section_exists() -> None:
    cited = _citations()
    assert len(cited["dsen2cr_spec.md"]) >= 8 and cited["field.md"]  # the pattern still matches
    for doc, sections in cited.items():
        have = _sections(REPO / "docs" / doc)
        assert sections <= have, f"docs/{doc} lacks sections {sorted(sections - have)}"


def test_citation_pattern_reads_ranges_and_markup() -> None:
    text = "``dsen2cr_spec.md`` sections 1-2 and ``field.md``, section 5; spec section 9"
    found = [(m[1], m[2], m[3]) for m in CITATION.finditer(text)]
    assert found == [("dsen2cr_spec.md", "1", "2"), ("field.md", "5", None), ("spec", "9", None)]
