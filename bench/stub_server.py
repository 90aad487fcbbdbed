"""An instant OpenAI-compatible stub for benchmarks: answers every completion at once.

Generation prompts get a short step-formatted MCQ answer; prompts ending in ``Verdict:`` (or
mentioning ``"verdict"``) get a judge's verdict. ``usage`` counts whitespace-separated words.
It is deliberately minimal (no validation, no logging) so the client side is what is measured.

    python bench/stub_server.py --port 0 --port-file /tmp/stub.port [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

GEN = " The findings narrow the options.\nStep 2: Option B fits best.\nAnswer: B"
JUDGE = " Correct\nScore: 4\nWrong steps: none\nReason: consistent with the answer."


def _reply_text(prompt: str) -> str:
    tail = prompt.rstrip()
    return JUDGE if tail.endswith("Verdict:") or '"verdict"' in prompt else GEN


async def _completion(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    chat = request.path.endswith("/chat/completions")
    if chat:
        prompt = "\n".join(str(m.get("content") or "") for m in body.get("messages") or [])
    else:
        prompt = body.get("prompt") or ""
        prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
    text = _reply_text(prompt)
    n = int(body.get("n") or 1)
    words = len(text.split())
    if chat:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i in range(n)
        ]
    else:
        choices = [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None} for i in range(n)]
    prompt_tokens = len(prompt.split())
    payload = {
        "id": "cmpl-stub",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": body.get("model") or "stub-model",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words * n,
            "total_tokens": prompt_tokens + words * n,
        },
    }
    return web.Response(body=json.dumps(payload).encode(), content_type="application/json")


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "stub-model", "object": "model"}]})


def make_app() -> web.Application:
    app = web.Application()
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/completions", _completion)
        app.router.add_post(f"{prefix}/chat/completions", _completion)
        app.router.add_get(f"{prefix}/models", _models)
    return app


def serve(sock: socket.socket) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(), sock=sock, print=None, handle_signals=True, backlog=4096)


def start_stub(port_file: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """Start the stub in its own process; returns (process, base URL)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--port", "0", "--port-file", str(port_file), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the stub server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default=None)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the socket")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.set_inheritable(True)
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        Path(tmp).write_text(f"{sock.getsockname()[1]}\n")
        os.replace(tmp, args.port_file)
    for _ in range(args.workers - 1):
        if os.fork() == 0:
            break
    serve(sock)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
