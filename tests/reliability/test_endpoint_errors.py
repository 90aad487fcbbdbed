"""A wrong endpoint fails at once with the URL and the fix: a base URL without /v1, a web page where
the API should be, a rejected key, a model name the endpoint does not serve."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from medloom.core.errors import FatalLLMError
from medloom.llm.transport import TransportRequest, TransportResponse
from medloom.llm.wire import decode
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, medloom_cli

PAGE = b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>hi</body></html>"


@contextmanager
def web_server(mode: str) -> Iterator[str]:
    """``v1``: a server like a reverse proxy, the OpenAI API only under /v1 and 404 JSON elsewhere;
    ``html``: a plain web site answering every path with a page; ``401``: an API refusing the key
    (and quoting it, as some do)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            if mode == "html":
                status, kind, body = 200, "text/html", PAGE
            elif mode == "401":
                auth = self.headers.get("Authorization", "")
                message = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}"}})
                status, kind, body = 401, "application/json", message.encode()
            elif self.path == "/v1/models":
                status, kind, body = 200, "application/json", b'{"data": [{"id": "fake-model"}]}'
            else:
                status, kind, body = 404, "application/json", b'{"detail": "Not Found"}'
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"]["path"] = str(RECIPE.parent / data["dataset"]["path"])
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(tmp_path: Path, url: str, *args: str) -> tuple[int, str]:
    result = medloom_cli(
        "run", str(_recipe(tmp_path)), "--endpoint", url, "--runs-dir", str(tmp_path / "runs"),
        "--limit", "2", "-q", *args,
    )  # fmt: skip
    return result.returncode, result.stderr.strip()


def _request(base_url: str, path: str = "/completions") -> TransportRequest:
    return TransportRequest(method="POST", base_url=base_url, path=path, endpoint="cli0")


def test_decode_names_the_url_and_the_fix_for_404_and_html_pages() -> None:
    with pytest.raises(FatalLLMError) as info:
        decode(
            TransportResponse(status=404, content=b'{"detail":"Not Found"}'),
            "cli0",
            _request("http://h:8000"),
        )
    assert str(info.value) == (
        "HTTP 404 from cli0: Not Found at http://h:8000/completions; "
        "the base URL http://h:8000 lacks /v1: try --endpoint http://h:8000/v1"
    )
    page = TransportResponse(status=200, content=PAGE, headers={"Content-Type": "text/html"})
    with pytest.raises(
        FatalLLMError,
        match=r"http://h/v1/completions answered with an HTML page \(title 'Welcome to nginx!'\)",
    ):
        decode(page, "cli0", _request("http://h/v1"))
    with pytest.raises(FatalLLMError, match="is the root of an OpenAI-compatible API"):
        decode(page, "cli0", _request("http://h/v1"))
    bad_gateway = TransportResponse(status=502, content=PAGE)
    with pytest.raises(Exception, match=r"HTTP 502 from cli0: an HTML page \(title 'Welcome to nginx!'\)$"):
        decode(bad_gateway, "cli0", _request("http://h/v1"))


def test_base_url_without_v1_stops_the_run_with_the_fix(tmp_path: Path) -> None:
    with web_server("v1") as url:
        code, err = _run(tmp_path, url)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"{url}/models" in err and f"try --endpoint {url}/v1" in err
        code, err = _run(tmp_path, url + "/v1", "--set", "models.gen.model=fake-model")
    assert code != 2, (
        err
    )  # with /v1 the same server is found (its completions 404 fail items, not the config)


def test_a_web_page_instead_of_the_api_stops_the_run_with_the_url(tmp_path: Path) -> None:
    with web_server("html") as url:
        code, err = _run(tmp_path, url + "/v1", "--set", "models.gen.model=m")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{url}/v1/models answered with an HTML page (title 'Welcome to nginx!')" in err


def test_an_unserved_model_name_is_caught_before_any_item_with_what_is_served(tmp_path: Path) -> None:
    with FakeOpenAIServer(McqStudent(), models=["med-7b", "med-70b"]) as srv:
        code, err = _run(tmp_path, srv.base_url, "--set", "models.gen.model=gpt-x")
        calls = srv.request_count
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"model 'gpt-x' is not served by cli0 ({srv.base_url}), which serves: med-70b, med-7b" in err
    assert "--set models.gen.model=med-70b" in err
    assert calls == 0  # no completion was paid for


def test_a_rejected_key_stops_the_run_naming_its_variable_without_quoting_it(tmp_path: Path) -> None:
    key, env = "sk-wrong-0123456789abcdef", "MEDLOOM_TEST_WRONG_KEY"
    with web_server("401") as url:
        result = medloom_cli(
            "run", str(_recipe(tmp_path)), "--endpoint", url + "/v1", "--api-key-env", env,
            "--runs-dir", str(tmp_path / "runs"), "-q", env={env: key},
        )  # fmt: skip
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert f"endpoint cli0 ({url}/v1) rejected the API key" in err and "$MEDLOOM_TEST_WRONG_KEY" in err
    assert "Bearer ***" in err and key not in err
