"""Errors that users see as one readable line instead of a traceback."""

from __future__ import annotations


class OddpixError(Exception):
    """A problem with the user's input, data or environment, explained in the message."""


class ConfigError(OddpixError):
    """params.yaml is invalid; the message names the key and what is valid."""


def os_error(exc: OSError) -> OddpixError:
    """A failed read or write (a full disk, a read-only folder, a vanished file) as one line."""
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return OddpixError(f"{where}{exc.strerror or exc}" + (" (free some space and run again)" if exc.errno in (28, 122)
                                                          else ""))


def one_line(exc: BaseException) -> "OddpixError | None":
    """``exc`` as the one error line users see (a missing optional package, a failed read or write, or an
    OddpixError itself); None for any other exception, which is a bug and keeps its traceback."""
    if isinstance(exc, OddpixError):
        return exc
    if isinstance(exc, ImportError):
        return missing_package(exc)
    if isinstance(exc, OSError):
        return os_error(exc)
    return None


# What each optional dependency group installs (pyproject.toml), by the name a module is imported as.
EXTRAS = {
    "pipeline": ("torch", "torchvision", "pandas", "sklearn", "scipy", "tqdm", "dvc", "ray", "onnx", "onnxscript"),
    "serve": ("fastapi", "uvicorn", "starlette", "multipart", "python_multipart"),
}


def missing_package(exc: ImportError) -> "OddpixError | None":
    """The readable error for a package of an optional group that is not installed (None: another one)."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            if extra == "pipeline":
                return OddpixError(f"{top} is not installed; the pipeline (training, scoring, export) needs it: "
                                   f"pip install 'oddpix[pipeline]' (an exported bundle scores without it: "
                                   f"oddpix predict --bundle B)")
            return OddpixError(f"{top} is not installed; the scoring service needs it: pip install 'oddpix[serve]'")
    return None
