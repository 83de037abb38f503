"""params.yaml -> validated, typed settings.

Every section is a frozen dataclass. Loading walks the YAML and the dataclasses together and stops at
the first problem with a one-line :class:`ConfigError` that names the full key (``models.cae.lr``) and
what would be valid: unknown keys (with a "did you mean"), unknown choices, wrong types and values out
of range. Model sections are looked up in the detector registry, so an unknown ``model`` lists the
detectors that exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml

from .errors import ConfigError

# --------------------------------------------------------------------------------------------------
# field helpers


def num(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        lt: float | None = None) -> Any:
    """A numeric field with bounds checked on load."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt})


def items(default: list, *, ge: float | None = None, gt: float | None = None, min_len: int = 0) -> Any:
    """A list field; bounds apply to each element, ``min_len`` to the list."""
    return field(default_factory=lambda: list(default), metadata={"ge": ge, "gt": gt, "min_len": min_len})


def section(cls: type) -> Any:
    return field(default_factory=cls)


# --------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["mnist", "fashion_mnist"] = "fashion_mnist"
    protocol: Literal["one_vs_rest"] = "one_vs_rest"
    normal_classes: list[int] = items([0], ge=0, min_len=1)
    val_fraction: float = num(0.1, gt=0.0, lt=1.0)
    val_anomaly_fraction: float = num(0.0, ge=0.0, lt=0.9)
    mirror: Optional[str] = None
    checksums: Literal["original", "mirror", "off"] = "original"
    download: bool = True


@dataclass(frozen=True)
class PreprocessConfig:
    normalize: Literal["unit", "standardize"] = "unit"
    image_size: Optional[int] = num(None, ge=4)
    channels: Optional[int] = num(None, ge=1, le=3)


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the shared training loop; every model section has them."""

    epochs: int = num(20, ge=1)
    batch_size: int = num(128, ge=1)
    lr: float = num(1e-3, gt=0.0)
    weight_decay: float = num(0.0, ge=0.0)
    patience: int = num(5, ge=1)


@dataclass(frozen=True)
class KdeConfig:
    enabled: bool = True
    bandwidth: Union[float, Literal["scott", "silverman", "cv"]] = "scott"
    max_train: int = num(10000, ge=10)


@dataclass(frozen=True)
class ScoreConfig:
    component: str = "reconstruction"
    batch_size: int = num(512, ge=1)


@dataclass(frozen=True)
class ThresholdConfig:
    rule: Literal["zscore", "percentile", "fixed", "otsu", "best_f1", "dual"] = "zscore"
    k: float = num(3.0, gt=0.0)
    two_sided: bool = False
    percentile: float = num(95.0, gt=0.0, lt=100.0)
    contamination: Optional[float] = num(None, gt=0.0, lt=0.5)
    value: Optional[float] = None
    dual_components: list[str] = field(default_factory=lambda: ["reconstruction", "density"])
    dual_rule: Literal["zscore", "percentile"] = "percentile"

    def problems(self) -> list[tuple[str, str]]:
        if self.rule == "fixed" and self.value is None:
            return [("value", "rule 'fixed' needs a number here")]
        if self.rule == "dual" and len(set(self.dual_components)) < 2:
            return [("dual_components", "rule 'dual' needs two different score components")]
        return []


@dataclass(frozen=True)
class PlotsConfig:
    n_images: int = num(8, ge=1, le=64)
    dpi: int = num(100, ge=30, le=600)


@dataclass(frozen=True)
class Params:
    seed: int = num(42, ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataConfig = section(DataConfig)
    preprocess: PreprocessConfig = section(PreprocessConfig)
    model: str = "cae"
    models: dict[str, Any] = field(default_factory=dict)
    kde: KdeConfig = section(KdeConfig)
    score: ScoreConfig = section(ScoreConfig)
    threshold: ThresholdConfig = section(ThresholdConfig)
    plots: PlotsConfig = section(PlotsConfig)

    @property
    def model_config(self) -> Any:
        return self.models[self.model]


# --------------------------------------------------------------------------------------------------
# parsing


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"params: {path}: {message}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    checks = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for key, ok, sign in checks:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            _fail(path, f"{value!r} is out of range; it must be {sign} {bound}")


def _convert(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            _fail(path, f"a value is required ({_type_name(tp)})")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path, meta)
            except ConfigError as exc:
                errors.append(str(exc))
        # a single non-None alternative: its message is the most precise one
        if len([a for a in args if a is not type(None)]) == 1:
            raise ConfigError(errors[0])
        _fail(path, f"{value!r} is not valid; expected {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(path, f"{value!r} is not a valid choice{hint}; valid choices: {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            _fail(path, f"expected a list, got {value!r}")
        if len(value) < meta.get("min_len", 0):
            _fail(path, f"needs at least {meta['min_len']} item(s)")
        inner_meta = {k: meta.get(k) for k in ("ge", "gt", "le", "lt")}
        return [_convert(args[0], v, f"{path}[{i}]", inner_meta) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
        _check_bounds(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {value!r}")
        _check_bounds(float(value), meta, path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {value!r}")
        return value
    if tp is Any or origin is dict:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a programming error, not user input


def parse_section(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``; ``path`` names it in messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        _fail(path or "params.yaml", f"expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{path}.{key}" if path else str(key)
            _fail(where, f"unknown key{hint}; valid keys: {', '.join(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in raw:
            continue
        where = f"{path}.{name}" if path else name
        kwargs[name] = _convert(hints[name], raw[name], where, f.metadata)
    obj = cls(**kwargs)
    for key, message in getattr(obj, "problems", lambda: [])():
        _fail(f"{path}.{key}" if path else key, message)
    return obj


def _model_registry() -> dict[str, type]:
    from .models import REGISTRY  # local import: models pull in torch

    return REGISTRY


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as loaded from YAML) into :class:`Params`."""
    if not isinstance(raw, Mapping):
        _fail("params.yaml", "expected a mapping at the top level")
    registry = _model_registry()
    raw = dict(raw)
    raw_models = raw.pop("models", None) or {}
    params = parse_section(Params, raw, "")
    if not isinstance(raw_models, Mapping):
        _fail("models", "expected a mapping of model name -> settings")
    if params.model not in registry:
        close = difflib.get_close_matches(params.model, list(registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail("model", f"unknown model {params.model!r}{hint}; valid choices: {', '.join(registry)}")
    models = {}
    for name, detector_cls in registry.items():
        models[name] = parse_section(detector_cls.Config, raw_models.get(name), f"models.{name}")
    for name in raw_models:
        if name not in registry:
            close = difflib.get_close_matches(str(name), list(registry), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"models.{name}", f"unknown model{hint}; valid choices: {', '.join(registry)}")
    params = dataclasses.replace(params, models=models)
    _check_cross_section(params, registry)
    return params


def _check_cross_section(params: Params, registry: Mapping[str, type]) -> None:
    detector_cls = registry[params.model]
    components = list(detector_cls.score_components)
    if params.kde.enabled and detector_cls.has_encoder:
        components.append("density")
    if params.score.component not in components:
        _fail("score.component", f"{params.score.component!r} is not produced by model {params.model!r}; "
              f"valid choices: {', '.join(components)}")
    if params.threshold.rule == "dual":
        for name in params.threshold.dual_components:
            if name not in components:
                _fail("threshold.dual_components", f"{name!r} is not produced by model {params.model!r}; "
                      f"valid choices: {', '.join(components)}")
    if params.threshold.rule == "best_f1" and params.data.val_anomaly_fraction == 0:
        _fail("threshold.rule", "best_f1 needs labelled anomalies in the validation split; set "
              "data.val_anomaly_fraction (e.g. 0.1) or use zscore, percentile, fixed, otsu or dual")
    loss = getattr(params.model_config, "loss", None)
    if loss == "bce" and params.preprocess.normalize != "unit":
        _fail(f"models.{params.model}.loss", "'bce' needs pixels in [0, 1]; set preprocess.normalize: unit "
              "or use loss: mse")
    if params.data.dataset in ("mnist", "fashion_mnist"):
        bad = [c for c in params.data.normal_classes if c > 9]
        if bad:
            _fail("data.normal_classes", f"{bad[0]} is not a class of {params.data.dataset}; valid choices: 0..9")
        if len(set(params.data.normal_classes)) == 10:
            _fail("data.normal_classes", "every class is normal, so there would be no anomalies to detect")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"params: {path} not found (run from the project root)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"params: {path} is not valid YAML: {exc}") from None
    return parse_params(raw or {})


def to_dict(obj: Any) -> Any:
    """Plain dict of a config object (for saving next to model weights)."""
    return dataclasses.asdict(obj)
