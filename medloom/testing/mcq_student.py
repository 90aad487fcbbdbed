"""A deterministic scripted "model" for MCQ recipes, for tests and benchmarks on the fake server.

Its replies depend only on the request (prompt, temperature, sample index), never on timing or
order, so an interrupted-and-resumed run must end exactly like an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from medloom.testing.fake.responders import FakeRequest, Reply

_LETTERS = "ABCD"


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


@dataclass
class McqStudent:
    """Answers generation, judge and refine prompts; ``delay_s`` simulates model latency."""

    delay_s: float = 0.0
    judge_correct_rate: float = 0.8
    fix_rate: float = 0.5

    def __call__(self, req: FakeRequest) -> Reply:
        prompt = req.prompt_text
        temperature = req.body.get("temperature", 0)
        tail = prompt.rstrip()[-200:]
        if tail.endswith("Verdict:") or '"verdict"' in prompt:
            texts = [self._judge(prompt, temperature, i) for i in range(req.n)]
        elif "Corrected steps:" in tail or "corrected steps" in prompt:
            texts = [self._refine(prompt, temperature, i) for i in range(req.n)]
        else:
            texts = [self._generate(prompt, temperature, i) for i in range(req.n)]
        return Reply(texts=texts, delay_s=self.delay_s)

    def _generate(self, prompt: str, temperature: object, i: int) -> str:
        letter = _LETTERS[_h(prompt, temperature, i) % 4]
        return f" The findings narrow the options.\nStep 2: Option {letter} fits them best.\nAnswer: {letter}"

    def _refine(self, prompt: str, temperature: object, i: int) -> str:
        gold = re.findall(r"does not match gold ([A-D])\)", prompt)
        step = re.findall(r"Step (\d+):\s*$", prompt.rstrip())
        k = step[-1] if step else "1"
        fixed = bool(gold) and _h(prompt, "fix", i) % 100 < self.fix_rate * 100
        letter = gold[-1] if fixed else _LETTERS[_h(prompt, temperature, i) % 4]
        return f" Reconsidering, option {letter} is better supported.\nAnswer: {letter}".replace(
            "Step", f"Step {k}"
        )

    def _judge(self, prompt: str, temperature: object, i: int) -> str:
        if _h(prompt, "judge", i) % 100 < self.judge_correct_rate * 100:
            score = 3 + _h(prompt, "score", i) % 3
            return f" Correct\nScore: {score}\nWrong steps: none\nReason: consistent with the answer."
        return " Error\nScore: 1\nWrong steps: 2\nReason: step 2 does not follow."
