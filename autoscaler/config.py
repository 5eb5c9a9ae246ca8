"""The controller's configuration file (`egs controller --config`, `egs api --config`), read into `Settings`.

Part of the autoscaler's pure core: `parse_config(raw)` takes the parsed YAML and returns the decide
step's `Settings` and the model registry's path; a wrong field raises `InputError` naming it
(`gpu_classes.H100-80GB: pool must be ...`), and an unknown key at any depth is refused here, by
`_mapping`, with its path (`gpu_classes.L4.egs: unknown field 'quantil'`): a misspelt key is never
silently a default. The format, with its defaults:

    namespace: egs-system          # the controller's own objects: warm pools, the Lease
    models: models.yaml            # the model registry (relative to this file)
    headroom: 0.2
    stale_after_s: 180
    default_throughput_rps: 1.0
    throughput_rps: {llama-3.1-8b-instruct: 5.0}
    sharing: {L4: timeslice}
    gpu_classes:                   # what the node autoscaler can add, and the warm pool of each
      H100-80GB: {gpus_per_node: 8, pool: balloon, policy: static, static_nodes: 1}
      L4:                          # the egs policy with what `egs simulate --json` fitted (the rest default)
        {gpus_per_node: 4, policy: egs, egs: {quantile: 0.9, learn_s: 604800, max_idle_nodes: 3, quiet_nodes: 1}}
    eta: {prior_delay_s: [300, 600], quantile: 0.95, step_s: 60}  # step_s: the controller's --interval
    engine: online                 # the scheduler's engine: greedy, online, auto or exact
    time_limit_s: 2.0
    scaleDownStabilizationSeconds: 300  # a lower replica target waits this long (HPA's); up is at once
    writeRetryDelaysSeconds: [0.25, 1, 2]  # waits before each retry of a loop's writes that failed a moment
    templateRollout: {maxEndpoints: "10%"}  # endpoints changing their pod template at once, unasked
    prices: {H100-80GB: 2.49}      # USD per GPU-hour overriding the catalogue's, as `egs plan --prices`
                                   # takes them; or the path of such a file (relative to this file)

The prices are the catalogue's (`parse_prices`), not the decide step's settings: placement ranks
classes by them, and the status and the series say what an endpoint costs at them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoscaler.decide import ClassSettings, ConsolidationSettings, Settings, TemplateRolloutSettings
from autoscaler.eta import EtaSettings
from autoscaler.pool import PoolSettings
from common.errors import InputError, naming
from scheduler.catalog import load_prices, parse_prices
from scheduler.schedule import ENGINES

_TOP = {
    "namespace", "models", "headroom", "stale_after_s", "default_throughput_rps",
    "throughput_rps", "sharing", "gpu_classes", "eta", "engine", "time_limit_s", "scaleDownStabilizationSeconds",
    "writeRetryDelaysSeconds", "prices", "consolidation", "templateRollout",
}  # fmt: skip
_SCALARS = ("namespace", "headroom", "stale_after_s", "default_throughput_rps", "engine", "time_limit_s")
_CLASS = {"gpus_per_node", "pool", "policy", "static_nodes", "nodepool", "egs"}
_CONSOLIDATION = {
    "enabled": "enabled",
    "minSavingFraction": "min_saving_fraction",
    "maxNodesPerInterval": "max_nodes_per_interval",
    "maxDisruptionsPerInterval": "max_nodes_per_interval",
    "interval": "interval_s",
    "consolidateAfter": "consolidate_after_s",
}
_ETA = {"prior_delay_s", "quantile", "min_observations", "step_s"}
_EGS = {f.name for f in dataclasses.fields(PoolSettings)} - {"gpus_per_node", "static_nodes"}
"""What a class's `egs:` may set: the policy's parameters (the class's own keys give the other two)."""


def parse_config(raw: Any, base: Path = Path(".")) -> tuple[Settings, Path | None]:
    """(settings, the model registry's path or None) from the parsed configuration file."""
    raw = {} if raw is None else raw
    _mapping(raw, "(root)", _TOP)
    classes = {}
    for name, cls in _mapping(raw.get("gpu_classes", {}), "gpu_classes").items():
        where = f"gpu_classes.{name}"
        _mapping(cls, where, _CLASS)
        if "egs" in cls:
            cls = {**cls, "egs": dict(_mapping(cls["egs"], f"{where}.egs", _EGS))}
        classes[str(name)] = _build(ClassSettings, where, cls)
    eta = _build(EtaSettings, "eta", _eta(_mapping(raw.get("eta", {}), "eta", _ETA)))
    fields = {k: raw[k] for k in _SCALARS if k in raw}
    # Checked here, not by the scheduler at every loop: a wrong one would fail each decide step, not the start.
    if "engine" in fields and fields["engine"] not in ENGINES:
        raise InputError(f"engine: one of {', '.join(ENGINES)}, got {fields['engine']!r}")
    if "time_limit_s" in fields:
        fields["time_limit_s"] = _seconds(fields["time_limit_s"], "time_limit_s")
        if not 0 < fields["time_limit_s"] < math.inf:
            raise InputError(f"time_limit_s: a positive number of seconds, got {raw['time_limit_s']!r}")
    if "scaleDownStabilizationSeconds" in raw:
        fields["scale_down_stabilization_s"] = _seconds(
            raw["scaleDownStabilizationSeconds"], "scaleDownStabilizationSeconds"
        )
    if "writeRetryDelaysSeconds" in raw:
        delays = raw["writeRetryDelaysSeconds"]
        if not isinstance(delays, list):
            raise InputError(f"writeRetryDelaysSeconds: a list of seconds, got {delays!r}")
        fields["write_retry_delays_s"] = tuple(_seconds(d, "writeRetryDelaysSeconds") for d in delays)
    raw_consolidation = _mapping(raw.get("consolidation", {}), "consolidation", set(_CONSOLIDATION))
    if {"maxNodesPerInterval", "maxDisruptionsPerInterval"} <= raw_consolidation.keys():
        raise InputError("consolidation: maxDisruptionsPerInterval is maxNodesPerInterval's old name; give one")
    fields["consolidation"] = _build(
        ConsolidationSettings,
        "consolidation",
        {_CONSOLIDATION[k]: _consolidation_value(k, v) for k, v in raw_consolidation.items()},
    )
    raw_rollout = _mapping(raw.get("templateRollout", {}), "templateRollout", {"maxEndpoints"})
    if "maxEndpoints" in raw_rollout:
        budget = _budget(raw_rollout["maxEndpoints"], "templateRollout.maxEndpoints", "endpoints")
        fields["template_rollout"] = _build(TemplateRolloutSettings, "templateRollout", {"max_endpoints": budget})
    settings = _build(
        Settings,
        "(root)",
        {
            **fields,
            "throughput_rps": {
                str(k): float(v) for k, v in _mapping(raw.get("throughput_rps", {}), "throughput_rps").items()
            },
            "sharing": {str(k): str(v) for k, v in _mapping(raw.get("sharing", {}), "sharing").items()},
            "classes": classes,
            "eta": eta,
        },
    )
    models = raw.get("models")
    if models is not None and not isinstance(models, str):
        raise InputError(f"models: the model registry's path, a string, got {type(models).__name__}")
    return settings, (base / models) if models else None


def _consolidation_value(key: str, value: Any) -> Any:
    where = f"consolidation.{key}"
    if key == "enabled":
        if not isinstance(value, bool):
            raise InputError(f"{where}: true or false, got {value!r}")
        return value
    if key in ("maxNodesPerInterval", "maxDisruptionsPerInterval"):
        # Karpenter's `nodes: "3"` or `"10%"`; the old key counted endpoints, now read as nodes.
        return _budget(value, where, "nodes")
    return _seconds(value, where)


def _budget(value: Any, where: str, of: str) -> int | str:
    """A count or a percentage (`3`, `"3"`, `"10%"`), as Karpenter's budgets take it; its range is the settings'."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"{where}: a number of {of} or a percentage of them ('10%'), got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: a number of seconds, got {value!r}")
    return float(value)


def parse_config_prices(raw: Any, base: Path = Path(".")) -> dict[str, float]:
    """The configuration's `prices:` (class -> USD per GPU-hour, inline or the path of a prices file), in
    the format of `egs plan --prices` and read by its parser; {} when there are none."""
    prices = (raw or {}).get("prices") if isinstance(raw, Mapping) else None
    if prices is None:
        return {}
    if isinstance(prices, str):
        with naming(base / prices):
            return load_prices(base / prices)
    try:
        return parse_prices(prices)
    except InputError as e:
        raise InputError(f"prices: {e.message}") from e


def _eta(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    if "prior_delay_s" in out:
        out["prior_delay_s"] = tuple(float(x) for x in out["prior_delay_s"])
    return out


def _mapping(raw: Any, where: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - allowed) if allowed is not None else []
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed or ()))})")
    return raw


def _build(cls: Any, where: str, values: Mapping[str, Any]) -> Any:
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from e
