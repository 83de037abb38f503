"""Score fusion: the ``fusion`` detector trains two or more detectors on the same images and adds up what
each one finds, after putting their scores on one scale.

Detectors miss different anomalies: the patch distances of ``patch_knn`` find small spots unlike any
remembered patch, the segmenter of synthetic anomalies ``synth_seg`` regions that do not belong (breaks,
frays). A raw sum would let whichever score has the larger numbers decide, so each member's
score is standardised by the mean and standard deviation of its scores on the **validation normals**
(z-scores, :mod:`.standardise`; no anomaly and no test image is looked at), then

* ``fused_mean`` (default): the mean of the members' z-scores: an image must look odd to most of them;
* ``fused_max``: the largest z-score: one member that is sure suffices.

The anomaly map is the mean of the members' maps, each standardised the same way by its pixel values on
the validation normals (members without maps, such as ``knn``, add to the image scores only; at least one
member must have maps), so ``local_max`` / ``local_topk`` read the fused map.

``members`` maps each member's name to its settings: keys of that detector's own section, on top of *its
defaults* (not of ``models.<member>`` in params.yaml: the fusion's whole recipe is in ``models.fusion``, the
one section DVC tracks for it). ``components`` picks a member's score component (default: its default).
Each member trains exactly as it would alone with the run's seed (same initial weights, same random
draws), so its scores equal a separate run's and the fusion adds no noise of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError, OddpixError
from ..maps import LOCAL_COMPONENTS, LocalConfig, read_local, smooth_maps
from ..schema import fail, not_a_choice, num, parse_section, section
from ..training import FitContext
from .base import FitData, MapDetector
from .catalog import REGISTRY, register
from .standardise import location_scale, register_scale, standardised


@dataclass(frozen=True)
class FusionConfig:
    members: dict[str, Any] = field(default_factory=lambda: {"patch_knn": {}, "synth_seg": {}})
    components: dict[str, Any] = field(default_factory=dict)  # member -> its score component (default: its first)
    local: LocalConfig = section(LocalConfig)  # a member's local_max / local_topk, when ``components`` picks one
    batch_size: int = num(256, ge=1)           # validation images scored at once for the standardisation

    def member_configs(self) -> dict[str, Any]:
        """Each member's parsed settings (its section's defaults, overridden by ``members.<name>``)."""
        if not isinstance(self.members, Mapping) or len(self.members) < 2:
            fail("members", f"expected a mapping of at least two detectors -> their settings, got {self.members!r}")
        out = {}
        for name, raw in self.members.items():
            if name not in REGISTRY or name == Fusion.name:
                fail(f"members.{name}", not_a_choice(name, [n for n in REGISTRY if n != Fusion.name], "a detector"))
            if REGISTRY[name].supervised:
                fail(f"members.{name}", f"{name} needs labelled anomalies; fusion trains its members on normal "
                     "images only")
            out[name] = parse_section(REGISTRY[name].Config, raw, f"members.{name}")
        return out

    def member_components(self) -> dict[str, str]:
        """Each member's component, checked against what it produces."""
        if not isinstance(self.components, Mapping):
            fail("components", f"expected a mapping of member -> component, got {self.components!r}")
        for name in self.components:
            if name not in self.members:
                fail(f"components.{name}", not_a_choice(name, list(self.members), "a member"))
        out = {}
        for name in self.members:
            valid = REGISTRY[name].components(kde=False)
            pick = self.components.get(name, valid[0])
            if pick not in valid:
                fail(f"components.{name}", not_a_choice(pick, valid, f"a score component of {name}"))
            out[name] = pick
        return out

    def problems(self) -> list[tuple[str, str]]:
        try:
            self.member_configs()
            self.member_components()
        except ConfigError as exc:  # "params: members.x.y: message" -> (members.x.y, message) under models.fusion
            key, _, message = str(exc).removeprefix("params: ").partition(": ")
            return [(key, message)]
        if not any(REGISTRY[name].has_maps for name in self.members):
            return [("members", "needs at least one member with anomaly maps; valid choices: "
                     + ", ".join(n for n, c in REGISTRY.items() if c.has_maps and n != Fusion.name))]
        return []


@register
class Fusion(MapDetector):
    name = "fusion"
    Config = FusionConfig
    score_components = ("fused_mean", "fused_max")

    def __init__(self, config: FusionConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        self.picks = config.member_components()
        self.members = nn.ModuleDict()
        self._rng_after_build: dict[str, torch.Tensor] = {}
        start = torch.get_rng_state()
        for name, member_config in config.member_configs().items():
            torch.set_rng_state(start)  # each member gets the initial weights it would get alone
            self.members[name] = REGISTRY[name](member_config, input_shape)
            self._rng_after_build[name] = torch.get_rng_state()
        register_scale(self, "score", len(self.members))
        register_scale(self, "map", len(self.members))

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        """Train each member as it would train alone, then standardise on the validation normals."""
        val = data.normal_val_x()
        if val is None or not len(val):
            raise OddpixError("model fusion standardises its members' scores on the validation normals and there "
                              "are none; set data.val_fraction > 0 (e.g. 0.1)")
        start = ctx.generator.get_state()
        history: list[dict] = []
        for name, member in self.members.items():
            ctx.generator.set_state(start)  # the same random draws as a run of this member alone
            torch.set_rng_state(self._rng_after_build[name])
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(ctx.generator.initial_seed())
            rows = member.fit(data, ctx)
            offset = len(history)
            history += [{**row, "epoch": row["epoch"] + offset,
                         "phase": f"{name} {row['phase']}" if row.get("phase") else name} for row in rows]
            self.fit_report.update({f"{name}_{k}": v for k, v in member.fit_report.items()})
        self.to(ctx.device).eval()
        self._standardise(val, ctx)
        return history

    @torch.no_grad()
    def _standardise(self, val: torch.Tensor, ctx: FitContext) -> None:
        n = len(self.members)
        values: list[list[torch.Tensor]] = [[] for _ in range(n)]
        sums, squares, count = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), 0
        for start in range(0, len(val), self.config.batch_size):
            scores, maps = self._member_outputs(val[start:start + self.config.batch_size].to(ctx.device))
            for i, (s, m) in enumerate(zip(scores, maps)):
                values[i].append(s.double().cpu())
                if m is not None:
                    sums[i] += m.double().sum().cpu()
                    squares[i] += m.double().pow(2).sum().cpu()
            count += next((m.numel() for m in maps if m is not None), 0)  # pixels of one member's maps
        # each member's statistics in float64 and on their own (a reduction over a stack of them can round
        # differently in the last bit)
        means, stds = zip(*(location_scale(torch.cat(v)[None]) for v in values))
        self.score_mean, self.score_std = (torch.cat(t).float().to(ctx.device) for t in (means, stds))
        if count:
            mean = sums / count
            self.map_mean = mean.float().to(ctx.device)
            self.map_std = (squares / count - mean ** 2).clamp_min(0).sqrt().float().clamp_min(1e-12).to(ctx.device)
        ctx.log("fusion: each member's score standardised on " + f"{len(val)} validation normals: " + ", ".join(
            f"({name} {self.picks[name]} - {m:.4g}) / {s:.4g}" for name, m, s in
            zip(self.members, self.score_mean.tolist(), self.score_std.tolist())))

    def _member_outputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list]:
        """Each member's chosen component, and its raw anomaly map (None for a member without maps)."""
        scores, maps = [], []
        for name, member in self.members.items():
            pick = self.picks[name]
            if member.has_maps:
                out, m = member.score_and_map(x)
                if pick in LOCAL_COMPONENTS:
                    out = read_local(smooth_maps(m, self.config.local), self.config.local)
            else:
                out, m = member.score(x), None
            scores.append(out[pick].float())
            maps.append(m)
        return scores, maps

    @torch.no_grad()
    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        scores, maps = self._member_outputs(x)
        z = torch.stack(standardised(scores, self.score_mean, self.score_std))
        fused_map = torch.stack(standardised([None if m is None else m.float() for m in maps], self.map_mean,
                                             self.map_std)).mean(0)
        return {"fused_mean": z.mean(0), "fused_max": z.amax(0)}, fused_map

