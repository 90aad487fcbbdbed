"""Text utilities shared by several layers: answer normalisation and MCQ choice extraction."""

from __future__ import annotations

import re
import unicodedata


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed, articles dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_LETTER_PATTERNS = [
    (r"^\(?([A-Z])\)?\s*$", re.I),  # a lone letter, any case: "b", "(B)"
    (r"^\(?([A-Z])\)?[.):\s]", 0),
    (r"answer\s+is\s*:?\s*\(?([A-Z])\)?\b", re.I),
    (r"\boption\s*\(?([A-Z])\)?\b", re.I),
    (r"^\**\(?([A-Z])\)?\**\b", 0),
]


def extract_choice(text: str | None, options: dict[str, str]) -> str | None:
    """The option letter ``text`` names: by letter ("B", "(B)", "B) ...") or by option text."""
    if not text:
        return None
    letters = {k.upper(): k for k in options}
    candidate = text.strip().strip("*").strip()
    for pattern, flags in _LETTER_PATTERNS:
        m = re.search(pattern, candidate, flags)
        if m and m.group(1).upper() in letters:
            letter = letters[m.group(1).upper()]
            # "A 45-year-old..." must not count as letter A when it matches no option text better.
            if pattern.startswith("^\\(?") and len(candidate) > 3:
                by_text = _choice_by_text(candidate, options)
                if by_text and by_text != letter:
                    return by_text
            return letter
    return _choice_by_text(candidate, options)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _choice_by_text(text: str, options: dict[str, str]) -> str | None:
    norm = _norm(text)
    if not norm:
        return None
    best: tuple[int, str] | None = None
    for letter, option in options.items():
        opt = _norm(str(option))
        matches = opt and (opt == norm or f" {opt} " in f" {norm} ")
        if matches and (best is None or len(opt) > best[0]):
            best = (len(opt), letter)
    return best[1] if best else None
