"""Log-probability verifiers: the arithmetic on known values, and the likelihood node on a fake
endpoint whose echoed prompt log-probabilities depend on the context."""

from __future__ import annotations

import math

import pytest

from medloom.core.calls import TokenLogprob
from medloom.core.events import Note, VerdictGiven
from medloom.core.records import Item
from medloom.testing import FakeRequest, Reply
from medloom.verifiers.likelihood import (
    CannotDecide,
    SpanScore,
    belief_shift,
    flagged_steps,
    gold_continuation,
    span_score,
    step_rewards,
)
from tests.graphs.test_engine import OPTIONS, RIGHT, WRONG, ends, item, run
from tests.ops.recipes import recipe_runtime

MODELS = ("models.gen.model=fake-model", "models.scorer.model=fake-model")


def tokens(pieces: list[tuple[str, float]], shift: int = 0) -> list[TokenLogprob]:
    out, pos = [], shift
    for text, lp in pieces:
        out.append(TokenLogprob(token=text, logprob=lp, offset=pos))
        pos += len(text)
    return out


def test_span_score_sums_the_continuations_tokens_from_the_end() -> None:
    echoed = tokens(
        [("Question", 0.0), (" x", -1.0), ("\n", -0.5), ("Answer", -0.25), (":", -0.25), (" A", -1.5)]
    )
    score = span_score(echoed, len("Answer: A"))
    assert (score.total, score.tokens) == (-2.0, 3)
    assert score.mean == pytest.approx(-2.0 / 3) and score.probability == pytest.approx(math.exp(-2.0))
    # a token straddling the boundary carries part of the continuation: it counts
    assert span_score(echoed, len("nswer: A")).tokens == 3
    # a decoded <bos> shifting every offset changes nothing
    assert (
        span_score(tokens([("<bos>", 0.0)]) + echoed[:0] + tokens([("Q", 0.0), (" A", -1.5)], 5), 2).total
        == -1.5
    )
    with pytest.raises(CannotDecide, match="no prompt log-probabilities"):
        span_score([TokenLogprob(token="A", logprob=-1.0)], 1)  # no offsets: not an echo


def test_belief_shift_and_step_rewards_on_known_values() -> None:
    assert belief_shift(SpanScore(-0.5, 2), SpanScore(-3.0, 2)) == 2.5
    prefixes = [SpanScore(-4.0, 4), SpanScore(-2.0, 4), SpanScore(-6.0, 4), SpanScore(-5.0, 4)]
    assert step_rewards(prefixes) == [0.5, -1.0, 0.25]  # mean per token: -1, -0.5, -1.5, -1.25
    assert flagged_steps([0.5, -1.0, 0.25, -0.4], 0.5) == [2]
    assert gold_continuation(item(1)) == "Answer: A) Propranolol"
    with_ref = Item(id="r", index=0, question="q", answer="7", data={"why": "Add them."})
    assert gold_continuation(with_ref, "why") == "Add them.\nAnswer: 7"


def context_logprob(before: str, token: str) -> float:
    """Gold-answer tokens are likely after the beta-blocker step and unlikely after levothyroxine."""
    if "Answer:" not in before.rsplit("\n", 1)[-1] and not token.strip().startswith("Answer"):
        return -1.0  # context tokens (not scored)
    steps = before.split("\nStep", 1)[1] if "\nStep" in before else ""  # not the options
    if "Levothyroxine" in steps:
        return -3.0
    if "beta blocker" in steps:
        return -0.2
    return -1.0


def responder(req: FakeRequest) -> str | Reply:
    if req.body.get("echo"):
        return Reply(texts="", echo_logprob=context_logprob)
    return [t.removeprefix("Step 1:") for t in (RIGHT, WRONG)]


async def test_recipe_filters_by_belief_shift_and_flags_steps(fake_llm) -> None:
    _, client = fake_llm(responder)
    events = await run(
        await recipe_runtime("mcq_logprob", client, *MODELS, "nodes.generate.samples=2"), [item(1)]
    )
    notes = {(e.node, e.trace_id): e.data for e in events if isinstance(e, Note) and e.kind == "likelihood"}
    right, wrong = "q1/generate/gen/t0.7/0", "q1/generate/gen/t0.7/1"
    # "Answer: A) Propranolol" is 3 tokens: -3.0 after the question alone
    assert notes["belief", right]["logprobs"] == [-3.0, -0.6] and notes["belief", right]["shift"] == 2.4
    assert notes["belief", wrong]["logprobs"] == [-3.0, -9.0] and notes["belief", wrong]["shift"] == -6.0
    verdicts = {(e.node, e.trace_id): e.verdict for e in events if isinstance(e, VerdictGiven)}
    assert verdicts["belief", right].passed and not verdicts["belief", wrong].passed
    assert "shift -6.000 nats" in verdicts["belief", wrong].reasons[0]
    # only the passing trace reaches the step scorer: prefixes 0, 1, 2 → means -1, -1, -0.2
    assert ("steps", wrong) not in notes
    assert notes["steps", right]["rewards"] == [0.0, 0.8] and verdicts["steps", right].passed
    end = ends(events)["q1"]
    assert end.status == "kept" and [r["trace_id"] for r in end.rows] == [right]
    assert end.rows[0]["belief_shift"] == 2.4


async def test_step_likelihood_flags_the_step_that_lowers_gold(fake_llm) -> None:
    batches: list[int] = []

    def counting(req: FakeRequest) -> str | Reply:
        if req.body.get("echo"):
            batches.append(len(req.body["prompt"]))
        return responder(req)

    _, client = fake_llm(counting)
    rt = await recipe_runtime(
        "mcq_logprob", client, *MODELS, "nodes.generate.samples=2", "nodes.belief.threshold=-100"
    )
    events = await run(rt, [item(1)])
    verdicts = {(e.node, e.trace_id): e.verdict for e in events if isinstance(e, VerdictGiven)}
    flagged = verdicts["steps", "q1/generate/gen/t0.7/1"]
    assert not flagged.passed and list(flagged.step_flags) == [2]  # -1 → -1 → -3 per token
    assert "by 2.000 nats/token" in flagged.step_flags[2] and flagged.score == 0.5
    # one request per trace and node scores all its prefixes: belief 2 (question alone, all
    # steps) for each trace, step likelihood 3 (0, 1, 2 steps)
    assert sorted(batches) == [2, 2, 3, 3]


async def test_endpoint_without_prompt_logprobs_cannot_decide(fake_llm) -> None:
    def no_echo(req: FakeRequest) -> str | Reply:
        if req.body.get("echo"):
            return Reply.error(400, message="echo is not supported")
        return RIGHT.removeprefix("Step 1:")

    _, client = fake_llm(no_echo)
    events = await run(
        await recipe_runtime("mcq_logprob", client, *MODELS, "nodes.generate.samples=1"), [item(1)]
    )
    (verdict,) = [e.verdict for e in events if isinstance(e, VerdictGiven) and e.node == "belief"]
    assert not verdict.passed and verdict.reasons[0].startswith(
        "cannot decide: the endpoint returned no prompt"
    )
    assert "echo is not supported" in verdict.reasons[0]
    assert ends(events)["q1"].status == "rejected"


def test_chat_models_are_refused_with_the_fix(tmp_path) -> None:
    from medloom.core.errors import GraphError
    from medloom.graphs.build import build_graph
    from medloom.graphs.loader import load_spec
    from tests.ops.recipes import CONFIGS

    spec = load_spec(CONFIGS / "mcq_logprob.yaml", ["models.scorer.mode=chat"])
    with pytest.raises(GraphError, match="give it `mode: completion`"):
        build_graph(spec)


assert OPTIONS["A"] == "Propranolol"
