"""Launch and supervise vLLM's OpenAI-compatible server as a child process.

Each server runs ``python -m vllm.entrypoints.openai.api_server`` in its own session (so its
process group holds the API server, the engine core and the workers vLLM spawns), logs to a
file, and never outlives medloom: :meth:`VLLMServer.stop` signals the whole group (SIGTERM,
then SIGKILL), an ``atexit`` hook stops what is still running, and for the case where medloom
dies without running it (SIGKILL, OOM) the server gets ``PR_SET_PDEATHSIG`` and a tiny
watchdog process kills the group once medloom is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Literal

import httpx

from medloom.serving.errors import (
    ModelPreparationError,
    ServerExitedError,
    ServerStartError,
    VLLMNotInstalledError,
)
from medloom.serving.model_prep import DEFAULT_MODEL_NAME, prepare_default_model

logger = logging.getLogger(__name__)

Device = Literal["cpu", "gpu", "auto"]

LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
_WATCHDOG_GRACE_S = 10.0

_WATCHDOG = r"""
import os, signal, sys, time
parent, pgid, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def alive():
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
while os.getppid() == parent:
    if not alive():
        sys.exit(0)
    time.sleep(0.5)
try:
    os.killpg(pgid, signal.SIGTERM)
except ProcessLookupError:
    sys.exit(0)
deadline = time.monotonic() + grace
while time.monotonic() < deadline and alive():
    time.sleep(0.2)
try:
    os.killpg(pgid, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


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
    extra_args: list[str] = field(default_factory=list)
    """Further ``vllm serve`` flags, appended last (they win over the ones medloom sets)."""
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 600.0
    log_path: Path | None = None
    """Where stdout and stderr go; default: a new file under the system's temp directory."""
    gpu: int | None = None
    """The GPU index for this server (sets ``CUDA_VISIBLE_DEVICES``)."""
    python: str = sys.executable
    """The interpreter that runs vLLM."""

    def resolved(self) -> ServerConfig:
        """A copy with ``device``, ``port``, ``served_model_name`` and the CPU defaults filled in."""
        device: Device = detect_device() if self.device == "auto" else self.device
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu', 'gpu' or 'auto', not {self.device!r}")
        cpu = device == "cpu"
        model = self.model
        path = Path(model).expanduser()
        if path.is_dir():
            model = str(path.resolve())
        name = self.served_model_name or (path.name if path.is_dir() else self.model)
        return replace(
            self,
            model=model,
            device=device,
            port=self.port or free_port(self.host),
            served_model_name=name,
            kv_cache_gib=self.kv_cache_gib if self.kv_cache_gib is not None else (4 if cpu else None),
            max_model_len=self.max_model_len if self.max_model_len is not None else (2048 if cpu else None),
            dtype=self.dtype or ("float32" if cpu and not _cpu_has_bf16() else None),
            extra_args=list(self.extra_args),
            env=dict(self.env),
        )


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


def gpu_count() -> int:
    """How many NVIDIA GPUs ``nvidia-smi`` lists (0 without the tool)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def detect_device() -> Literal["cpu", "gpu"]:
    """``cpu`` when the installed vLLM is the CPU build or no GPU is visible, else ``gpu``."""
    try:
        importlib.metadata.version("vllm-cpu")
        return "cpu"
    except importlib.metadata.PackageNotFoundError:
        pass
    return "gpu" if gpu_count() > 0 else "cpu"


def _cpu_has_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux only).

    The kernel sends the signal when the *thread* that forked exits, so this is only used when
    launching from the main thread; the watchdog covers the other cases.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def vllm_importable(python: str = sys.executable) -> bool:
    """Whether ``python`` has vLLM installed (a cheap check: it does not import it)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return importlib.util.find_spec("vllm") is not None
    result = subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


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
        """The command line that launches the server."""
        cfg = self.config
        cmd = [
            cfg.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            cfg.model,
            "--host",
            cfg.host,
            "--port",
            str(cfg.port),
            "--served-model-name",
            self.model_name,
        ]
        if cfg.max_model_len:
            cmd += ["--max-model-len", str(cfg.max_model_len)]
        if cfg.dtype:
            cmd += ["--dtype", cfg.dtype]
        if cfg.chat_template is not None:
            cmd += ["--chat-template", str(cfg.chat_template)]
        if cfg.device == "cpu":
            # vLLM 0.32 on CPU: a request with a `seed` whose prompt is chunked across steps kills
            # the engine ("CPU Generator does not use offset"); without chunking it cannot happen.
            cmd.append("--no-enable-chunked-prefill")
        return cmd + list(cfg.extra_args)

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, plus the settings vLLM needs here, plus ``config.env``."""
        cfg = self.config
        env = dict(os.environ)
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        if Path(cfg.model).expanduser().is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")
        if cfg.device == "cpu":
            if cfg.kv_cache_gib is not None:
                env["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.kv_cache_gib)
            # vLLM 0.32's AOT compile cache fails to load on CPU ("'function' object has no attribute
            # 'finalize_loading'") and recompiles every start; the older inductor cache is reused.
            env.setdefault("VLLM_USE_AOT_COMPILE", "0")
        if cfg.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(cfg.gpu)
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
                raise VLLMNotInstalledError(
                    f"vLLM is not installed for {cfg.python}; install the local extra: "
                    "pip install 'medloom[local]' (or bash scripts/install_local.sh <python>)"
                )
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
                    preexec_fn=_pdeathsig_preexec(parent),
                )
            except OSError as exc:
                self._cleanup_handles()
                raise ServerStartError(f"cannot run {cfg.python}: {exc}") from exc
            with contextlib.suppress(OSError):
                self._watchdog = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        "-c",
                        _WATCHDOG,
                        str(parent),
                        str(self._proc.pid),
                        str(_WATCHDOG_GRACE_S),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            _LIVE.add(self)
            logger.info("started vLLM (pid %d) on %s, log %s", self._proc.pid, self.base_url, self._log_path)
            return self

    def wait_ready(self, timeout: float | None = None) -> VLLMServer:
        """Block until ``/health`` and ``/v1/models`` answer; stop the server and raise if not.

        Raises :class:`ServerStartError` (with the exit code and the log's tail) when the process
        exits first or ``timeout`` (default ``config.ready_timeout_s``) passes.
        """
        if self._proc is None:
            raise RuntimeError("call start() before wait_ready()")
        timeout = self.config.ready_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        root = self.base_url.removesuffix("/v1")
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self.stop()
                    raise ServerStartError(
                        f"vLLM server for {self.config.model!r} exited with code {code} before it was ready",
                        exit_code=code,
                        log_path=self._log_path,
                        log_tail=self.log_tail(),
                    )
                if self._ready(client, root):
                    self.ready_after_s = time.monotonic() - self._started_at
                    logger.info("vLLM ready on %s after %.0f s", self.base_url, self.ready_after_s)
                    return self
                if time.monotonic() >= deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise ServerStartError(
                        f"vLLM server for {self.config.model!r} was not ready after {timeout:.0f} s; "
                        "stopped it. Raise ServerConfig.ready_timeout_s if it was still loading",
                        log_path=self._log_path,
                        log_tail=tail,
                    )
                time.sleep(1.0)

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
        SIGKILL.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            descendants = _descendants(proc.pid)
            pgid = proc.pid  # start_new_session: the server leads its own group
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None or _group_alive(pgid):
                logger.warning("vLLM (pid %d) did not stop within %.0f s; killing it", proc.pid, timeout)
                _signal_group(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5.0)
            _kill_survivors(descendants)
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


class ServerGroup:
    """Several vLLM servers (replicas) started and stopped together."""

    def __init__(self, configs: Sequence[ServerConfig]):
        if not configs:
            raise ValueError("a ServerGroup needs at least one ServerConfig")
        self.servers = [VLLMServer(cfg) for cfg in configs]

    @classmethod
    def replicas(cls, config: ServerConfig, n: int) -> ServerGroup:
        """``n`` copies of ``config``: consecutive ports from ``config.port`` (or free ports),
        and on GPU one device each (``config.gpu`` + i)."""
        if n < 1:
            raise ValueError(f"replicas must be >= 1, got {n}")
        device: Device = detect_device() if config.device == "auto" else config.device
        if device == "gpu" and config.gpu is None and n > 1 and gpu_count() and n > gpu_count():
            raise ValueError(f"{n} replicas need {n} GPUs, but nvidia-smi lists {gpu_count()}")
        if device == "cpu" and n > 1:
            logger.warning("%d CPU replicas share %s cores; one replica is usually faster", n, os.cpu_count())
        configs = []
        for i in range(n):
            gpu = None
            if device == "gpu" and (n > 1 or config.gpu is not None):
                gpu = (config.gpu or 0) + i
            log_path = config.log_path
            if log_path is not None and n > 1:
                log_path = log_path.with_name(f"{log_path.stem}-{i}{log_path.suffix}")
            configs.append(
                replace(
                    config,
                    device=device,
                    port=config.port + i if config.port else 0,
                    gpu=gpu,
                    log_path=log_path,
                    extra_args=list(config.extra_args),
                    env=dict(config.env),
                )
            )
        return cls(configs)

    @property
    def endpoints(self) -> list[str]:
        """The base URLs, e.g. ``["http://127.0.0.1:8000/v1"]``."""
        return [server.base_url for server in self.servers]

    def start(self) -> ServerGroup:
        """Launch every server, then wait for all of them concurrently; on any failure stop all."""
        try:
            for server in self.servers:
                server.start()
            with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                futures = [pool.submit(server.wait_ready) for server in self.servers]
                errors = [f.exception() for f in futures]
        except BaseException:
            self.stop()
            raise
        failed = [e for e in errors if e is not None]
        if failed:
            self.stop()
            raise failed[0]
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every server (concurrently)."""
        with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
            list(pool.map(lambda s: s.stop(timeout), self.servers))

    def check_alive(self) -> None:
        """Raise :class:`ServerExitedError` for the first server that has exited."""
        for server in self.servers:
            server.check_alive()

    def __enter__(self) -> ServerGroup:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(group: ServerGroup, *, out: Callable[[str], None] = print) -> None:
    """Print the endpoints, block until SIGINT or SIGTERM, then stop the group.

    Raises :class:`ServerExitedError` (after stopping the others) if a server exits on its own.
    """
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        names = sorted({server.model_name for server in group.servers})
        out(f"serving {', '.join(names)} on:")
        for url in group.endpoints:
            out(f"  {url}")
        out("press Ctrl-C to stop")
        while not stop.wait(1.0):
            group.check_alive()
        out(f"received {signal.Signals(received[0]).name}; stopping")
    finally:
        group.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_serve_command(
    model: str | None,
    device: str,
    port: int,
    replicas: int,
    extra_args: list[str],
    *,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] | None = None,
) -> int:
    """``medloom serve``: serve ``model`` (default: the prepared Gemma 3 270M) until interrupted.

    Returns the process exit code: 0 after a clean stop, 1 when preparing or starting failed or
    a server died.
    """
    err = err or (lambda msg: print(msg, file=sys.stderr))
    if device not in ("cpu", "gpu", "auto"):
        err(f"error: --device must be cpu, gpu or auto, not {device!r}")
        return 2
    try:
        served_name = None
        if model is None:
            out(f"preparing the default model {DEFAULT_MODEL_NAME} (first time only, a few minutes)...")
            model = str(prepare_default_model())
            served_name = DEFAULT_MODEL_NAME
        config = ServerConfig(
            model=model,
            served_model_name=served_name,
            device=device,  # type: ignore[arg-type]  # checked above
            port=port,
            extra_args=list(extra_args),
        )
        group = ServerGroup.replicas(config, replicas)
        out(f"starting {replicas} vLLM server(s) for {model} (this takes minutes on CPU)...")
        group.start()
        for server in group.servers:
            out(f"{server.base_url} ready after {server.ready_after_s or 0:.0f} s (log: {server.log_path})")
        serve_forever(group, out=out)
    except (ModelPreparationError, ServerStartError, ValueError) as exc:
        err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:  # Ctrl-C while preparing or starting; the servers are already stopped
        err("interrupted")
        return 130
    return 0


# -- process helpers ------------------------------------------------------------------------


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # members that are only zombies waiting for their parent do not count
        import psutil
    except ImportError:
        return True
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (psutil.Error, OSError):
            continue
    return False


def _descendants(pid: int) -> list[Any]:
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:
        return []


def _kill_survivors(processes: list[Any]) -> None:
    """SIGKILL descendants that left the server's group (vLLM does not, but be sure)."""
    for proc in processes:
        with contextlib.suppress(Exception):
            if proc.is_running() and proc.status() != "zombie":
                proc.kill()


_LIVE: set[VLLMServer] = set()
"""Started servers not yet stopped; the atexit hook stops them."""


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        if server._owner_pid == os.getpid():  # not in a forked child that inherited the set
            with contextlib.suppress(Exception):
                server.stop(timeout=10.0)
