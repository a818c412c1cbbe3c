"""Follow-up questions without a server: the fallback's queries, fusion, the rewrite request and
what is made of its answer. tests/server/test_chat.py runs them through /chat/completions."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from athenaeum.bundle import ChunkRecord
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.engine import Hit
from athenaeum.server.answers import followup
from athenaeum.server.answers.followup import RRF_K, Retrieval, Turn
from athenaeum.server.settings import Settings


def test_a_first_turn_has_no_context() -> None:
    turns = [Turn("system", "Be brief."), Turn("user", "  vitamin D and bones ")]
    assert followup.latest_question(turns, 2000) == "vitamin D and bones"
    assert followup.earlier_questions(turns) == []
    assert followup.fallback_queries("vitamin D and bones", "") == ["vitamin D and bones"]


def test_the_fallback_puts_the_last_two_earlier_user_turns_before_the_last() -> None:
    turns = [
        Turn("system", "Be brief."),
        Turn("user", "Who is the petitioner in Knowles v. Mirzayance?"),
        Turn("assistant", "Michael A. Knowles, warden."),
        Turn("user", "When was it\nargued?"),
        Turn("assistant", "January 13, 2009."),
        Turn("user", ""),  # an empty turn is not context
        Turn("user", "And who argued for the respondent?"),
    ]
    latest = followup.latest_question(turns, 2000)
    earlier = followup.earlier_questions(turns)
    assert earlier == ["Who is the petitioner in Knowles v. Mirzayance?", "When was it\nargued?"]
    context = followup.fallback_context(latest, earlier, 2000)
    # Assistant answers and system messages are not context; whitespace is squashed.
    assert context == "Who is the petitioner in Knowles v. Mirzayance? When was it argued?"
    assert followup.fallback_queries(latest, context) == [latest, f"{context} {latest}"]

    # Only the last CONTEXT_TURNS earlier turns count.
    more = ["first topic", *earlier]
    assert followup.fallback_context(latest, more, 2000) == context


def test_the_fallback_context_is_bounded_and_keeps_the_latest_text() -> None:
    earlier = ["old " * 400 + "recent words at the end"]
    context = followup.fallback_context("and then?", earlier, 2000)
    assert len(context) <= followup.CONTEXT_CHARS
    assert context.endswith("recent words at the end") and context.startswith("old ")
    # Within the query limit: the last message keeps its room, the context gets the rest...
    context = followup.fallback_context("x" * 1990, earlier, 2000)
    assert context == "the end" and len(context) + 1 + 1990 <= 2000
    # ...and none when the last message fills it: one search, for the last message.
    assert followup.fallback_context("x" * 2000, earlier, 2000) == ""


def test_the_last_user_message_must_have_text() -> None:
    with pytest.raises(InvalidInputError):
        followup.latest_question([Turn("system", "hi")], 2000)
    with pytest.raises(InvalidInputError):  # an empty last question is not replaced by an older
        followup.latest_question([Turn("user", "vitamin D"), Turn("user", " ")], 2000)
    assert followup.latest_question([Turn("user", "a" * 50)], 10) == "a" * 10


def _hit(cid: str) -> Hit:
    return Hit(
        ChunkRecord(id=cid, doc_id=cid, ordinal=0, text=cid, title=cid, source=f"{cid}.pdf"), 0.0
    )


def test_fusion_is_reciprocal_rank_fusion() -> None:
    last_only = [_hit("a"), _hit("b"), _hit("c")]
    with_context = [_hit("d"), _hit("b"), _hit("a")]
    fused = followup.fuse([last_only, with_context], 3)
    # a: 1st and 3rd; b: 2nd in both; d: 1st in one list only; c: 3rd in one list only.
    assert [h.chunk.id for h in fused] == ["a", "b", "d"]
    assert fused[0].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 3))
    assert fused[1].score == pytest.approx(2 / (RRF_K + 2))
    assert fused[2].score == pytest.approx(1 / (RRF_K + 1))
    # One query is one search, nothing fused.
    calls: list[tuple[str, int]] = []

    def search(query: str, top_k: int) -> list[Hit]:
        calls.append((query, top_k))
        return last_only[:top_k]

    assert followup.search_fallback(search, ["q"], 2) == last_only[:2]
    assert calls == [("q", 2)]
    followup.search_fallback(search, ["q", "ctx q"], 2)
    assert calls[1:] == [("q", 50), ("ctx q", 50)]  # two searches, ranked deep, then fused


@pytest.mark.parametrize(
    ("answer", "query"),
    [
        ("Who argued for the respondent in Knowles v. Mirzayance?", None),
        ('  "Who argued for the respondent?"  ', "Who argued for the respondent?"),
        ("Query: vitamin D in children", "vitamin D in children"),
        ('Who wrote "Faust"?', None),
        ("Standalone query: “rickets”", "rickets"),
        ("\n\nvitamin D  in\tchildren\nThis query asks about ...", "vitamin D in children"),
        ("", ""),
        ("   \n  ", ""),
        ('""', ""),
        ("...", ""),
    ],
)
def test_the_rewrite_is_cleaned_to_one_query(answer: str, query: str | None) -> None:
    expected = answer if query is None else (query or None)
    assert followup.clean_rewrite(answer) == expected


def test_a_long_rewrite_is_cut_at_a_word() -> None:
    query = followup.clean_rewrite("vitamin " * 100)
    assert query is not None and len(query) <= followup.MAX_REWRITE_CHARS
    assert query.endswith("vitamin") and "  " not in query


def test_the_rewrite_request_sees_the_last_few_turns_cut_short() -> None:
    turns = [Turn("system", "Answer in French.")]
    for n in range(10):
        turns += [Turn("user", f"question {n}"), Turn("assistant", f"answer {n} " + "x" * 2000)]
    turns.append(Turn("user", "and the last one?"))
    messages = followup.rewrite_messages(turns)
    assert messages[0] == {"role": "system", "content": followup.REWRITE_PROMPT}
    lines = messages[1]["content"].split("\n")
    assert len(lines) == followup.REWRITE_MESSAGES
    assert lines[-1] == "user: and the last one?"
    assert lines[0].startswith("assistant: answer 7 ")
    assert all(len(line) <= len("assistant: ") + followup.REWRITE_MESSAGE_CHARS for line in lines)
    assert "French" not in messages[1]["content"]


def test_the_query_header_is_latin1_safe_and_reversible() -> None:
    query = "Quelle décision le comité a-t-il prise ? 50% «vite»\nnow"
    headers = followup.headers(Retrieval(query, "rewrite", []))
    value = headers[followup.QUERY_HEADER]
    assert value.isascii() and "\n" not in value
    assert unquote(value) == query
    assert headers[followup.METHOD_HEADER] == "rewrite"


def test_the_prompt_and_limits_are_documented_as_they_are() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    assert followup.REWRITE_PROMPT in doc
    words = " ".join(doc.split())
    for fact in (
        f"last {followup.REWRITE_MESSAGES} user and assistant messages",
        f"each cut to {followup.REWRITE_MESSAGE_CHARS} characters",
        f"`max_tokens: {followup.REWRITE_MAX_TOKENS}`",
        f"within {Settings.model_fields['llm_rewrite_timeout_s'].default:g} seconds",
        f"at most {followup.MAX_REWRITE_CHARS} characters",
        f"cut to {followup.CONTEXT_CHARS} characters",
        followup.QUERY_HEADER,
        followup.METHOD_HEADER,
    ):
        assert fact in words, fact
    assert followup.CONTEXT_TURNS == 2 and "last two earlier user messages" in words
