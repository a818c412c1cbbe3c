"""Chunking with the real MiniLM tokenizer: structure, caps, tables, pages, ids, BEIR input."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from athenaeum.build.chunking import (
    Chunk,
    ChunkingParams,
    SourceDocument,
    chunk_document,
    clean_heading,
    context_label,
    embed_text,
    read_beir_corpus,
    read_text_document,
)
from athenaeum.build.sources import page_marker, render_markdown
from athenaeum.errors import InvalidInputError
from tests.conftest import SCIFACT_DIR

Count = Callable[[str], int]
CAP = 254  # MiniLM: max_seq_length 256 less [CLS] and [SEP], no document prefix


def scifact_texts(n: int) -> list[str]:
    texts = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if len(record["text"]) > 400:
                texts.append(record["text"])
            if len(texts) == n:
                break
    return texts


def markdown_doc(
    body: str, *, title: str | None = "Guide", doc_id: str = "guide.md"
) -> SourceDocument:
    text = render_markdown({"title": title, "source": "guide.pdf"} if title else {}, body)
    return SourceDocument(doc_id, "guide.pdf", title, text, "0" * 64, "markdown")


def chunks_of(
    doc: SourceDocument, count: Count, cap: int = CAP, overlap: int = 32, context: bool = True
) -> list[Chunk]:
    return chunk_document(doc, count, ChunkingParams(cap, overlap, context))


def test_headings_start_chunks_and_give_their_path(minilm_count_tokens: Count) -> None:
    body = "\n".join(
        [
            "Preface before any heading.",
            "",
            "# **Guide**",
            "Welcome.",
            "## Install",
            "### _Linux_",
            "Use apt on snake_case_systems.",
            "```bash",
            "# a comment, not a heading",
            "apt install athenaeum",
            "```",
            "### Mac",
            "Use brew.",
            "## Empty sibling",
            "# Reference ##",
            "All the flags.",
        ]
    )
    chunks = chunks_of(markdown_doc(body), minilm_count_tokens)
    paths = [c.heading_path for c in chunks]
    assert paths == [
        [],
        ["Guide"],
        ["Guide", "Install", "Linux"],
        ["Guide", "Install", "Mac"],
        ["Reference"],
    ]
    texts = [c.text for c in chunks]
    assert texts[0] == "Preface before any heading."
    # "## Install" has no text of its own: it opens its child's chunk instead of standing alone.
    assert texts[2].startswith("## Install\n\n### _Linux_\n\nUse apt")
    assert "# a comment, not a heading\napt install athenaeum\n```" in texts[2]
    assert "Empty sibling" not in " ".join(texts)  # a heading with no text, under no one
    assert texts[4] == "# Reference ##\n\nAll the flags."
    assert [c.ordinal for c in chunks] == list(range(5))
    assert {c.title for c in chunks} == {"Guide"}
    assert {c.source for c in chunks} == {"guide.pdf"}
    assert clean_heading("**Bold** and _it_ and snake_case") == "Bold and it and snake_case"


def test_every_chunk_fits_the_cap_with_the_real_tokenizer(minilm_count_tokens: Count) -> None:
    long_paragraph = " ".join(scifact_texts(6))
    run_on = "word " * 300 + "x" * 3000  # no sentence ends, then one "word" of 3000 characters
    body = "\n\n".join(
        [
            "# Results",
            long_paragraph,
            "## Raw",
            run_on,
            "```python\n"
            + "\n".join(f"value_{i} = compute({i}, {i * 7})" for i in range(120))
            + "\n```",
        ]
    )
    doc = markdown_doc(body, title="A study of many things")
    for cap, overlap in [(CAP, 32), (64, 8)]:
        params = ChunkingParams(cap, overlap)
        chunks = chunk_document(doc, minilm_count_tokens, params)
        assert len(chunks) > 5
        for chunk in chunks:
            assert minilm_count_tokens(chunk.text) <= cap
            embedded = embed_text(
                chunk.text, chunk.title, chunk.heading_path, minilm_count_tokens, params
            )
            assert minilm_count_tokens(embedded) <= cap
        # Nothing is lost: every word of the long paragraph is in some chunk.
        joined = " ".join(c.text for c in chunks)
        assert set(long_paragraph.split()) <= set(joined.split())
    code_chunks = [c for c in chunks if c.text.startswith("```python")]
    assert len(code_chunks) > 1
    for chunk in code_chunks:  # code is cut between lines and every piece is fenced again
        lines = chunk.text.split("\n")
        assert lines[0] == "```python" and lines[-1] == "```"
        assert all(re.fullmatch(r"value_\d+ = compute\(\d+, \d+\)", x) for x in lines[1:-1])


def test_long_prose_is_cut_at_sentences_with_overlap(minilm_count_tokens: Count) -> None:
    paragraph = " ".join(scifact_texts(4))
    doc = markdown_doc(paragraph, title=None)
    chunks = chunks_of(doc, minilm_count_tokens, overlap=32)
    assert len(chunks) >= 3
    for previous, chunk in itertools.pairwise(chunks):
        # The next chunk starts by repeating the previous chunk's last sentence(s), <= 32 tokens.
        head = next(
            chunk.text[:i]
            for i in range(len(chunk.text), 0, -1)
            if previous.text.endswith(chunk.text[:i])
        )
        assert 0 < minilm_count_tokens(head) <= 32
        assert chunk.text.startswith(head)
    for chunk in chunks[:-1]:  # pieces end at sentence ends
        assert chunk.text.rstrip().endswith((".", "!", "?", '."', ".)"))
    no_overlap = chunks_of(doc, minilm_count_tokens, overlap=0)
    assert sum(len(c.text) for c in no_overlap) < sum(len(c.text) for c in chunks)


def test_tables_are_cut_between_rows_with_the_header_repeated(minilm_count_tokens: Count) -> None:
    header = "| Compound | Dose (mg/kg) | Outcome in the treated cohort |"
    separator = "|:---|---:|---|"
    rows = [
        f"| compound-{i} | {i * 3} | reduced tumour growth by {i}% over twelve weeks |"
        for i in range(60)
    ]
    body = "# Trial\n\nThe table below lists every arm.\n\n" + "\n".join([header, separator, *rows])
    chunks = chunks_of(markdown_doc(body), minilm_count_tokens, cap=128, overlap=16)
    table_chunks = [c for c in chunks if header in c.text]
    assert len(table_chunks) > 2
    seen: list[str] = []
    for chunk in table_chunks:
        assert minilm_count_tokens(chunk.text) <= 128
        table = chunk.text[chunk.text.index(header) :].split("\n")
        assert table[0] == header and table[1] == separator
        assert all(line in rows for line in table[2:])  # whole rows only
        seen.extend(table[2:])
    assert seen == rows  # every row once, in order


def test_page_spans_follow_the_page_markers(minilm_count_tokens: Count) -> None:
    long_page_two = " ".join(scifact_texts(3))
    body = "\n\n".join(
        [
            page_marker(1),
            "# Introduction",
            "Opening words on page one.",
            page_marker(2),
            long_page_two,
            "A paragraph that starts on page two",
            page_marker(3),
            "and ends on page three.",
            "## Methods",
            "Methods text on page three.",
            page_marker(4),
            "| a | b |\n|---|---|\n| on page four | yes |",
        ]
    )
    chunks = chunks_of(markdown_doc(body), minilm_count_tokens)
    assert all("<!-- page" not in c.text for c in chunks)

    def span(phrase: str) -> tuple[int | None, int | None]:
        (chunk,) = [c for c in chunks if phrase in c.text]
        return chunk.page_start, chunk.page_end

    assert span("Opening words") == (1, 2)  # the first chunk runs into page two's long text
    assert span("and ends on page three") == (2, 3)
    assert span("Methods text") == (3, 4)
    assert span("on page four") == (3, 4)
    middle = [
        c for c in chunks if "Opening words" not in c.text and "starts on page two" not in c.text
    ]
    assert any(c.page_start == c.page_end == 2 for c in middle)

    plain = chunks_of(markdown_doc("No markers here.\n\nAt all.", title=None), minilm_count_tokens)
    assert [(c.page_start, c.page_end) for c in plain] == [(None, None)]


def test_chunk_ids_are_stable_and_change_with_the_text(
    tmp_path: Path, minilm_count_tokens: Count
) -> None:
    file = tmp_path / "notes.md"
    file.write_text("# Notes\n\n" + " ".join(scifact_texts(3)), encoding="utf-8")
    params = ChunkingParams(CAP)
    first = chunk_document(read_text_document(file, "notes.md"), minilm_count_tokens, params)
    second = chunk_document(read_text_document(file, "notes.md"), minilm_count_tokens, params)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    assert all(re.fullmatch(r"[0-9a-f]{16}", c.id) for c in first)

    file.write_text(file.read_text(encoding="utf-8") + "\n\nOne more closing remark.", "utf-8")
    edited = chunk_document(read_text_document(file, "notes.md"), minilm_count_tokens, params)
    assert [c.id for c in edited[:-1]] == [c.id for c in first[:-1]]
    assert edited[-1].id != first[-1].id


def test_beir_corpus_documents_carry_their_title_in_the_text(
    tmp_path: Path, minilm_count_tokens: Count
) -> None:
    lines = (SCIFACT_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:50]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    docs = list(read_beir_corpus(corpus))
    records = [json.loads(line) for line in lines]
    assert [d.doc_id for d in docs] == [r["_id"] for r in records]
    assert docs[0].text == f"{records[0]['title']} {records[0]['text']}"
    assert docs[0].title == records[0]["title"] and docs[0].source == "corpus.jsonl"

    params = ChunkingParams(CAP)
    per_doc = [chunk_document(d, minilm_count_tokens, params) for d in docs]
    short = [
        (d, c) for d, c in zip(docs, per_doc, strict=True) if minilm_count_tokens(d.text) <= CAP
    ]
    long = [(d, c) for d, c in zip(docs, per_doc, strict=True) if minilm_count_tokens(d.text) > CAP]
    assert short and long
    for doc, chunks in short:  # whole, and embedded as BEIR does: title + " " + text, no label
        assert [c.text for c in chunks] == [doc.text]
        assert embed_text(chunks[0].text, doc.title, [], minilm_count_tokens, params) == doc.text
    for doc, chunks in long:
        assert len(chunks) > 1 and chunks[0].text.startswith(doc.title or "")
        # Later pieces do not start with the title, so they are embedded with it in front.
        later = embed_text(chunks[1].text, doc.title, [], minilm_count_tokens, params)
        assert later == f"{doc.title}\n\n{chunks[1].text}"

    corpus.write_text('{"title": "no id"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"corpus\.jsonl:1"):
        list(read_beir_corpus(corpus))


def test_context_label_and_embed_text(minilm_count_tokens: Count) -> None:
    params = ChunkingParams(CAP)
    label = context_label("Guide", ["Guide", "Install", "Linux"], minilm_count_tokens, params)
    assert label == "Guide > Install > Linux"
    text = "Use apt."
    assert embed_text(text, "Guide", ["Install"], minilm_count_tokens, params) == (
        "Guide > Install\n\nUse apt."
    )
    assert embed_text(
        "# **Guide**\n\nWelcome.", "Guide", ["Guide"], minilm_count_tokens, params
    ) == ("# **Guide**\n\nWelcome.")
    off = ChunkingParams(CAP, context=False)
    assert embed_text(text, "Guide", ["Install"], minilm_count_tokens, off) == text
    # A heading path longer than a quarter of the cap loses its outer parts first.
    deep = [f"Part {i} of a very long and deeply nested outline" for i in range(20)]
    short = context_label("Title", deep, minilm_count_tokens, params)
    assert short.endswith(deep[-1]) and minilm_count_tokens(short) <= CAP // 4


def test_plain_text_files_have_no_markdown_structure(
    tmp_path: Path, minilm_count_tokens: Count
) -> None:
    file = tmp_path / "readme.txt"
    file.write_text("# not a heading\n\n| not | a table |\n\nLast paragraph.\n", encoding="utf-8")
    doc = read_text_document(file, "readme.txt")
    assert doc.kind == "text" and doc.title == "Readme"  # the file name made readable
    (chunk,) = chunk_document(doc, minilm_count_tokens, ChunkingParams(CAP))
    assert chunk.heading_path == []
    assert chunk.text == "# not a heading\n\n| not | a table |\n\nLast paragraph."


def test_parameters_are_checked() -> None:
    with pytest.raises(InvalidInputError):
        ChunkingParams(8)
    with pytest.raises(InvalidInputError):
        ChunkingParams(100, overlap=60)
