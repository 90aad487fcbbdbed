"""FakeOpenAIServer driven by the real ``openai.AsyncOpenAI`` client (no retries)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import pytest

from medloom.testing import FakeOpenAIServer, FakeRequest, Reply, ScriptedResponder, echo_responder

REPO = Path(__file__).resolve().parents[2]

ServerFactory = Callable[..., FakeOpenAIServer]
ClientFactory = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    started: list[FakeOpenAIServer] = []

    def factory(*args: object, **kwargs: object) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(*args, **kwargs).start()  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFactory]:
    clients: list[openai.AsyncOpenAI] = []

    def factory(srv: FakeOpenAIServer, timeout: float = 10.0) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0, timeout=timeout)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


async def test_completion_schema_usage_and_recording(
    make_server: ServerFactory, client_for: ClientFactory
) -> None:
    srv = make_server(lambda req: "the quick brown fox")
    client = client_for(srv)
    out = await client.completions.create(model="fake-model", prompt="say four words")
    assert out.object == "text_completion"
    assert out.model == "fake-model"
    assert out.id and out.created > 0
    (choice,) = out.choices
    assert (choice.index, choice.text, choice.finish_reason) == (0, "the quick brown fox", "stop")
    assert choice.logprobs is None
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (3, 4)
    assert out.usage.total_tokens == 7
    (req,) = srv.requests
    assert (req.kind, req.prompt_text, req.model) == ("completion", "say four words", "fake-model")
    assert req.n == 1
    assert req.headers["Authorization"] == "Bearer test-key"
    assert srv.request_count == 1
    assert srv.completion_tokens_served == 4


async def test_chat_prompt_text_joins_messages(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server()  # echo_responder: the last message's content
    client = client_for(srv)
    out = await client.chat.completions.create(
        model="other-model",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert out.object == "chat.completion"
    assert out.model == "other-model"
    msg = out.choices[0].message
    assert (msg.role, msg.content) == ("assistant", "hello there")
    assert out.choices[0].finish_reason == "stop"
    req = srv.requests[0]
    assert req.kind == "chat"
    assert req.prompt_text == "be brief\nhello there"
    assert out.usage is not None and out.usage.prompt_tokens == 4


async def test_n_choices_cycle_per_choice_texts(
    make_server: ServerFactory, client_for: ClientFactory
) -> None:
    srv = make_server(lambda req: ["a b", "c"])
    client = client_for(srv)
    out = await client.completions.create(model="fake-model", prompt="p", n=3)
    assert [(c.index, c.text) for c in out.choices] == [(0, "a b"), (1, "c"), (2, "a b")]
    assert out.usage is not None and out.usage.completion_tokens == 5
    chat = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "p"}], n=2
    )
    assert [c.message.content for c in chat.choices] == ["a b", "c"]
    assert srv.requests[0].n == 3


async def test_stop_and_max_tokens(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(lambda req: "one two three END four five")
    client = client_for(srv)
    out = await client.completions.create(model="fake-model", prompt="p", stop=["four", "END"])
    assert (out.choices[0].text, out.choices[0].finish_reason) == ("one two three ", "stop")
    out = await client.completions.create(model="fake-model", prompt="p", max_tokens=2)
    assert (out.choices[0].text, out.choices[0].finish_reason) == ("one two", "length")
    assert out.usage is not None and out.usage.completion_tokens == 2
    # stop before the limit wins; the limit inside the stopped text wins
    out = await client.completions.create(model="fake-model", prompt="p", stop="END", max_tokens=5)
    assert out.choices[0].finish_reason == "stop"
    chat = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "p"}], stop="END", max_tokens=2
    )
    assert (chat.choices[0].message.content, chat.choices[0].finish_reason) == ("one two", "length")


async def test_logprobs_when_requested(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(lambda req: "alpha beta gamma")
    client = client_for(srv)
    out = await client.completions.create(model="fake-model", prompt="p", logprobs=0)
    lp = out.choices[0].logprobs
    assert lp is not None
    assert lp.tokens == ["alpha", " beta", " gamma"]
    assert lp.token_logprobs == [-0.5, -0.5, -0.5]
    assert lp.text_offset == [0, 5, 10]
    assert lp.top_logprobs is None
    chat = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "p"}], logprobs=True
    )
    content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert [t.token for t in content] == ["alpha", " beta", " gamma"]
    assert all(t.logprob == -0.5 and t.top_logprobs == [] for t in content)
    plain = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "p"}]
    )
    assert plain.choices[0].logprobs is None


async def test_429_with_retry_after(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(lambda req: Reply.error(429, retry_after=1))
    client = client_for(srv)
    with pytest.raises(openai.RateLimitError) as info:
        await client.completions.create(model="fake-model", prompt="p")
    err = info.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "1"
    assert err.code == "rate_limit_exceeded"
    assert err.request_id == "req-fake-0"
    assert srv.completion_tokens_served == 0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(make_server: ServerFactory, client_for: ClientFactory, status: int) -> None:
    srv = make_server(lambda req: Reply.error(status, message="boom"))
    client = client_for(srv)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "p"}])
    assert info.value.status_code == status
    assert "boom" in info.value.message


async def test_malformed_body_raises_json_decode_error(
    make_server: ServerFactory, client_for: ClientFactory
) -> None:
    # The SDK calls ``response.json()`` on an application/json body without wrapping the
    # failure, so a truncated body surfaces as json.JSONDecodeError (a ValueError), not
    # as an openai.APIError.
    srv = make_server(lambda req: Reply.garbage())
    client = client_for(srv)
    with pytest.raises(json.JSONDecodeError):
        await client.completions.create(model="fake-model", prompt="p")
    assert srv.request_count == 1
    assert srv.completion_tokens_served == 0


async def test_delay_times_out_client(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(lambda req: Reply.slow(0.5, "late answer"))
    client = client_for(srv, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        await client.completions.create(model="fake-model", prompt="p")
    await asyncio.sleep(0.6)
    assert srv.completion_tokens_served == 0  # the abandoned reply was never paid for


async def test_disconnect_is_connection_error(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(lambda req: Reply.disconnect() if req.attempt == 0 else "ok")
    client = client_for(srv)
    with pytest.raises(openai.APIConnectionError):
        await client.completions.create(model="fake-model", prompt="p")
    out = await client.completions.create(model="fake-model", prompt="p")
    assert out.choices[0].text == "ok"


async def test_set_down_refuse_then_up_on_same_port(
    make_server: ServerFactory, client_for: ClientFactory
) -> None:
    srv = make_server()
    client = client_for(srv)
    port, base_url = srv.port, srv.base_url
    await client.completions.create(model="fake-model", prompt="before")  # pooled connection
    srv.set_down(True, mode="refuse")
    assert srv.down == "refuse"
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    with pytest.raises(openai.APIConnectionError):
        await client.completions.create(model="fake-model", prompt="during")
    srv.set_down(False)
    assert (srv.port, srv.base_url, srv.down) == (port, base_url, None)
    out = await client.completions.create(model="fake-model", prompt="after")
    assert out.choices[0].text == "after"
    assert [r.prompt_text for r in srv.requests] == ["before", "after"]


async def test_set_down_drop_and_503(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server()
    client = client_for(srv)
    srv.set_down(True)  # default mode: accept, then close without a response
    with pytest.raises(openai.APIConnectionError):
        await client.completions.create(model="fake-model", prompt="p")
    srv.set_down(True, mode="503")
    with pytest.raises(openai.InternalServerError) as info:
        await client.completions.create(model="fake-model", prompt="p")
    assert info.value.status_code == 503
    assert (srv.request_count, srv.rejected_count) == (0, 2)
    srv.set_down(False)
    assert (await client.completions.create(model="fake-model", prompt="p")).choices[0].text == "p"
    assert srv.request_count == 1


async def test_attempt_counts_identical_bodies(make_server: ServerFactory, client_for: ClientFactory) -> None:
    def flaky(req: FakeRequest) -> Reply | str:
        return Reply.error(500) if req.attempt < 2 else f"ok after {req.attempt}"

    srv = make_server(flaky)
    client = client_for(srv)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.completions.create(model="fake-model", prompt="same")
    out = await client.completions.create(model="fake-model", prompt="same")
    assert out.choices[0].text == "ok after 2"
    with pytest.raises(openai.InternalServerError):  # a different body starts at attempt 0
        await client.completions.create(model="fake-model", prompt="other")
    assert [(r.index_in_run, r.attempt) for r in srv.requests] == [(0, 0), (1, 1), (2, 2), (3, 0)]
    srv.reset_counts()
    assert (srv.requests, srv.request_count, srv.completion_tokens_served) == ([], 0, 0)
    with pytest.raises(openai.InternalServerError):
        await client.completions.create(model="fake-model", prompt="same")
    assert srv.requests[0].attempt == 0 and srv.requests[0].index_in_run == 0


async def test_scripted_responder(make_server: ServerFactory, client_for: ClientFactory) -> None:
    async def slow_upper(req: FakeRequest) -> str:
        await asyncio.sleep(0)
        return req.prompt_text.upper()

    script = (
        ScriptedResponder(default="default")
        .add("capital", "Paris")
        .add("flaky", Reply.error(503), times=1)
        .add(lambda r: r.kind == "chat", slow_upper)
    )
    srv = make_server(script)
    client = client_for(srv)

    async def complete(prompt: str) -> str:
        out = await client.completions.create(model="fake-model", prompt=prompt)
        return out.choices[0].text

    assert await complete("the capital of France?") == "Paris"
    assert await complete("anything") == "default"
    with pytest.raises(openai.InternalServerError):
        await complete("flaky")
    assert await complete("flaky") == "default"  # the rule was used up
    chat = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "shout"}]
    )
    assert chat.choices[0].message.content == "SHOUT"


async def test_responder_exception_is_500(make_server: ServerFactory, client_for: ClientFactory) -> None:
    def broken(req: FakeRequest) -> str:
        raise KeyError("nope")

    srv = make_server(broken)
    client = client_for(srv)
    with pytest.raises(openai.InternalServerError) as info:
        await client.completions.create(model="fake-model", prompt="p")
    assert "KeyError" in info.value.message


async def test_models_and_health(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(models=["m-a", "m-b"])
    client = client_for(srv)
    page = await client.models.list()
    assert [m.id for m in page.data] == ["m-a", "m-b"]
    status, body = await asyncio.to_thread(_get, f"{srv.url}/health")
    assert status == 200 and body == {"status": "ok"}
    default = make_server()
    assert [m.id for m in (await client_for(default).models.list()).data] == ["fake-model"]


async def test_strict_models_404(make_server: ServerFactory, client_for: ClientFactory) -> None:
    srv = make_server(strict_models=True)
    client = client_for(srv)
    with pytest.raises(openai.NotFoundError):
        await client.completions.create(model="unknown", prompt="p")


@pytest.mark.slow
async def test_hundreds_in_flight(make_server: ServerFactory, client_for: ClientFactory) -> None:
    total = 256
    arrived = 0
    gate = asyncio.Event()  # used only on the server's loop

    async def hold_until_all_arrive(req: FakeRequest) -> str:
        nonlocal arrived
        arrived += 1
        if arrived == total:
            gate.set()
        await asyncio.wait_for(gate.wait(), 30)
        return f"r{req.index_in_run}"

    srv = make_server(hold_until_all_arrive)
    client = client_for(srv, timeout=60)
    outs = await asyncio.gather(
        *(client.completions.create(model="fake-model", prompt=f"p{i}") for i in range(total))
    )
    assert len({o.choices[0].text for o in outs}) == total  # all were in flight at once
    assert srv.request_count == total and srv.completion_tokens_served == total


async def test_stop_with_requests_in_flight(client_for: ClientFactory) -> None:
    srv = FakeOpenAIServer(lambda req: Reply.slow(30, "never")).start()
    client = client_for(srv)
    task = asyncio.create_task(client.completions.create(model="fake-model", prompt="p"))
    while srv.request_count == 0:
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - started < 3
    with pytest.raises(openai.APIConnectionError):
        await task


def test_reachable_from_another_process(make_server: ServerFactory) -> None:
    srv = make_server(lambda req: "from afar")
    code = (
        "import json, sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1] + '/chat/completions', method='POST',\n"
        "    data=json.dumps({'model': 'fake-model', 'messages': []}).encode(),\n"
        "    headers={'Content-Type': 'application/json'})\n"
        "print(json.load(urllib.request.urlopen(req))['choices'][0]['message']['content'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, srv.base_url], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == "from afar", out.stderr


def test_stop_is_idempotent_and_restart_keeps_port() -> None:
    srv = FakeOpenAIServer().start()
    port = srv.port
    srv.stop()
    srv.stop()
    with srv:
        assert srv.port == port
        status, _ = _get(f"{srv.url}/health")
        assert status == 200


def test_echo_responder_default() -> None:
    req = FakeRequest(
        kind="chat",
        body={"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        prompt_text="hi",
        model="m",
        n=1,
        index_in_run=0,
        attempt=0,
    )
    assert echo_responder(req) == "hi"


def _spawn_cli(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medloom.testing.fake",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"fake server did not start: {err.decode()}")
        time.sleep(0.02)
    return proc, int(port_file.read_text())


def _terminate(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_cli_with_script_file(tmp_path: Path) -> None:
    script = tmp_path / "replies.py"
    script.write_text(
        textwrap.dedent("""
        from medloom.testing import Reply, ScriptedResponder

        responder = ScriptedResponder(default="scripted reply").add("fail", Reply.error(429, 2))
    """)
    )
    proc, port = _spawn_cli(tmp_path, "--script", f"{script}:responder", "--models", "a,b")
    try:
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=10
        )
        async with client:
            out = await client.completions.create(model="a", prompt="hello")
            assert out.choices[0].text == "scripted reply"
            with pytest.raises(openai.RateLimitError) as info:
                await client.completions.create(model="a", prompt="fail")
            assert info.value.response.headers["retry-after"] == "2"
            assert [m.id for m in (await client.models.list()).data] == ["a", "b"]
        _, stats = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/_fake/stats")
        assert stats["request_count"] == 2 and stats["completion_tokens_served"] == 2
    finally:
        assert _terminate(proc) == 0


async def test_cli_module_callable_and_default(tmp_path: Path) -> None:
    proc, port = _spawn_cli(tmp_path, "--script", "medloom.testing.fake:echo_responder")
    try:
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=10
        )
        async with client:
            out = await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "echo me"}]
            )
            assert out.choices[0].message.content == "echo me"
    finally:
        assert _terminate(proc) == 0
    out_text, err_text = proc.communicate()
    assert b"listening on" in out_text
    assert b"RuntimeWarning" not in err_text
