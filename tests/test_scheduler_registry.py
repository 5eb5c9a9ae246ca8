"""The model registry: the example registry loads, the VRAM a replica needs matches arithmetic done
by hand (written out in each test), tensor parallelism splits weights and KV heads, and every bad
input is rejected with the path of the bad field.

Not covered: whether the overhead constants match a running vLLM; that needs a GPU and belongs to
a benchmark.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.catalog import Catalog
from scheduler.registry import (
    DEFAULT_QUALITY,
    MAX_TP,
    Model,
    Registry,
    RegistryError,
    Variant,
    per_gpu_need,
    per_gpu_need_mib,
    vram_need_mib,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "models.yaml"
MIB = 2**20
GIB = 2**30
CATALOG = Catalog.load()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(EXAMPLE, CATALOG)


def model_and_variant(registry: Registry, model: str, variant: str) -> tuple[Model, Variant]:
    m = registry.get(model)
    return m, m.variant(variant)


def test_example_registry_loads_real_open_models(registry: Registry) -> None:
    names = {m.name for m in registry}
    assert len(registry) >= 8
    assert {"llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.1-405b-instruct"} <= names
    llama70 = registry.get("llama-3.1-70b-instruct").architecture
    assert (llama70.layers, llama70.kv_heads, llama70.head_dim) == (80, 8, 128)


def test_llama_8b_bf16_at_8k_context_and_16_sequences(registry: Registry) -> None:
    model, variant = model_and_variant(registry, "llama-3.1-8b-instruct", "bf16")
    weights = math.ceil(8.03e9 * 2 / MIB)  # 2 bytes per weight, as fp16: 15317 MiB (14.96 GiB)
    kv = 2 * 32 * 8 * 128 * 2 * 8192 * 16 // MIB  # K+V x layers x kv heads x head dim x 2 B x tokens: 16384
    overhead = math.ceil(1536 + 0.05 * weights)  # 1.5 GiB + 5% of weights: 2302
    assert (weights, kv, overhead) == (15317, 16384, 2302)
    assert vram_need_mib(model, variant) == weights + kv + overhead == 34003


def test_llama_70b_int4_uses_the_checkpoint_size_and_splits_over_tp(registry: Registry) -> None:
    model, variant = model_and_variant(registry, "llama-3.1-70b-instruct", "int4-awq")
    assert variant.weights_gib == 37.1  # given: the AWQ checkpoint, larger than 70.6e9 x 0.5 B
    weights = math.ceil(37.1 * 1024)  # 37991 MiB
    kv = 2 * 80 * 8 * 128 * 2 * 8192 * 16 // MIB  # 40960 MiB
    assert vram_need_mib(model, variant) == weights + kv + math.ceil(1536 + 0.05 * weights) == 82387
    # tp=4: a quarter of the weights and 8/4 = 2 KV heads on each GPU, plus the per-GPU overhead.
    weights4 = math.ceil(37.1 * 1024 / 4)  # 9498
    kv4 = 2 * 80 * 2 * 128 * 2 * 8192 * 16 // MIB  # 10240
    assert per_gpu_need_mib(model, variant, tp=4) == weights4 + kv4 + math.ceil(1536 + 0.05 * weights4) == 21749


def test_kv_heads_are_replicated_when_tp_exceeds_them(registry: Registry) -> None:
    model, variant = model_and_variant(registry, "llama-3.1-405b-instruct", "bf16")
    # 8 KV heads over 8 GPUs: one head each; at tp=16 each GPU still holds one whole head.
    kv_one_head = 2 * 126 * 1 * 128 * 2 * 8192 * 8 // MIB  # 4032 MiB
    assert per_gpu_need(model, variant, tp=8).kv_cache_mib == kv_one_head
    assert per_gpu_need(model, variant, tp=16).kv_cache_mib == kv_one_head


def test_context_and_concurrency_override_the_serving_defaults(registry: Registry) -> None:
    model, variant = model_and_variant(registry, "llama-3.1-8b-instruct", "bf16")
    short = per_gpu_need(model, variant, context=2048, concurrency=4)
    assert short.kv_cache_mib == 2 * 32 * 8 * 128 * 2 * 2048 * 4 // MIB == 1024


def test_fp8_kv_cache_halves_the_cache() -> None:
    base = registry_of(model_entry(serving={"context_tokens": 4096, "concurrency": 8, "kv_cache_dtype": "fp8"}))
    model = base.get("test-13b")
    assert per_gpu_need(model, model.variant("fp16")).kv_cache_mib == 2 * 40 * 40 * 128 * 1 * 4096 * 8 // MIB


def test_13b_int8_fits_twice_where_fp16_fit_once_on_a_40gb_gpu() -> None:
    """The issue's example: ~26 GB in FP16 and ~13 GB in INT8; on a 40 GB GPU two INT8 replicas fit
    where one FP16 did (weights only)."""
    model = registry_of(model_entry()).get("test-13b")
    fp16, int8 = model.variant("fp16"), model.variant("int8")
    assert fp16.weights_gib * GIB == pytest.approx(26e9)  # 13e9 x 2 B = 24.2 GiB
    assert int8.weights_gib * GIB == pytest.approx(13e9)  # 13e9 x 1 B = 12.1 GiB
    a100 = CATALOG.get("A100-40GB").vram_mib  # 40960 MiB
    assert a100 // (fp16.weights_gib * 1024) == 1
    assert a100 // (int8.weights_gib * 1024) >= 2


def test_defaults_for_quality_floors_and_load_time(registry: Registry) -> None:
    _, fp8 = model_and_variant(registry, "llama-3.1-8b-instruct", "fp8")
    assert fp8.quality == DEFAULT_QUALITY["fp8"] == 0.99
    assert (fp8.min_compute_capability, fp8.min_gfx) == ("8.9", "gfx942")
    assert fp8.load_seconds == pytest.approx(30 + fp8.weights_gib / 2)
    _, gemma_fp8 = model_and_variant(registry, "gemma-2-27b-it", "fp8")
    assert gemma_fp8.quality == 0.98  # given


def test_variants_run_only_where_their_precision_does(registry: Registry) -> None:
    _, fp8 = model_and_variant(registry, "llama-3.1-70b-instruct", "fp8")
    assert fp8.runs_on(CATALOG.get("H100-80GB"))
    assert fp8.runs_on(CATALOG.get("MI300X"))
    assert not fp8.runs_on(CATALOG.get("A100-80GB"))
    _, fp16 = model_and_variant(registry, "mistral-7b-instruct-v0.3", "fp16")
    assert fp16.runs_on(CATALOG.get("V100-16GB"))


def test_an_unquoted_compute_capability_is_read_as_major_minor() -> None:
    model = registry_of(model_entry(variants=[{"precision": "fp8", "min_compute_capability": 9.0}])).get("test-13b")
    assert model.variant("fp8").min_compute_capability == "9.0"


def model_entry(**change: Any) -> dict[str, Any]:
    """A 13B model shaped like Llama-2-13B (40 layers, 40 KV heads of 128)."""
    entry: dict[str, Any] = {
        "name": "test-13b",
        "architecture": {"parameters_b": 13.0, "layers": 40, "kv_heads": 40, "head_dim": 128, "max_context": 4096},
        "serving": {"context_tokens": 4096, "concurrency": 8},
        "variants": [{"precision": "fp16"}, {"precision": "int8", "source": "example/test-13b-w8a8"}],
    }
    entry.update(change)
    return entry


def registry_of(*models: dict[str, Any]) -> Registry:
    return Registry.parse({"models": list(models)}, CATALOG)


def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A valid one-model registry with the field at `path` (under the model) set to `value`."""
    raw: dict[str, Any] = {"models": [model_entry()]}
    node: Any = raw["models"][0]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def without(*path: str | int) -> dict[str, Any]:
    raw: dict[str, Any] = {"models": [model_entry()]}
    node: Any = raw["models"][0]
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return raw


V0 = r"models\[0\]\.variants\[0\]"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (changed(("family",), "llama"), r"^models\[0\]\.family: unknown key"),
        (changed(("variants", 0, "bits"), 4), rf"^{V0}\.bits: unknown key"),
        (changed(("variants", 0, "weights_gib"), -1), rf"^{V0}\.weights_gib: -1 is less than or equal to the minimum"),
        (changed(("variants", 0, "weights_gib"), 0), rf"^{V0}\.weights_gib: 0 is less than or equal to the minimum"),
        (changed(("architecture", "parameters_b"), 0), r"^models\[0\]\.architecture\.parameters_b: 0 is less"),
        (changed(("architecture", "layers"), -2), r"^models\[0\]\.architecture\.layers: -2 is less"),
        (changed(("architecture", "layers"), True), r"^models\[0\]\.architecture\.layers: True is not of type"),
        (changed(("serving", "concurrency"), 0), r"^models\[0\]\.serving\.concurrency: 0 is less"),
        (changed(("variants", 0, "precision"), "fp4"), rf"^{V0}\.precision: 'fp4' is not one of"),
        (
            changed(("variants", 0, "min_compute_capability"), "eight"),
            rf"^{V0}\.min_compute_capability: 'eight' is not",
        ),
        (
            changed(("variants", 0, "min_compute_capability"), "8.9.1"),
            rf"^{V0}\.min_compute_capability: '8.9.1' is not",
        ),
        (
            changed(("variants", 0, "min_compute_capability"), [8, 9]),
            rf"^{V0}\.min_compute_capability: \[8, 9\] is not",
        ),
        (changed(("variants", 0, "min_gfx"), "mi300"), rf"^{V0}\.min_gfx: 'mi300' is not a gfx target"),
        (changed(("variants", 0, "quality"), 1.5), rf"^{V0}\.quality: 1.5 is greater than the maximum of 1"),
        (changed(("serving", "kv_cache_dtype"), "int4"), r"^models\[0\]\.serving\.kv_cache_dtype: 'int4' is not one"),
        (changed(("name",), "Llama 13B"), r"^models\[0\]\.name: 'Llama 13B' is not a lower-case name"),
        (changed(("variants",), []), r"^models\[0\]\.variants: \[\] should be non-empty"),
        (without("architecture", "kv_heads"), r"^models\[0\]\.architecture\.kv_heads: required"),
        (without("variants", 0, "precision"), rf"^{V0}\.precision: required"),
        (changed(("serving", "context_tokens"), 8192), r"^models\[0\]\.serving\.context_tokens: 8192 is more than"),
        (
            changed(("variants",), [{"precision": "fp16"}, {"precision": "fp16"}]),
            r"^models\[0\]\.variants\[1\]\.name: duplicate variant name 'fp16'",
        ),
        (
            changed(("architecture", "parameters_b"), 2000),
            rf"^{V0}: needs \d+ MiB per GPU even over {MAX_TP} GPUs .* the largest GPU it runs on \(\w+\)",
        ),
        (
            changed(("variants", 0), {"precision": "fp8", "min_compute_capability": "12.0", "min_gfx": "gfx99f"}),
            rf"^{V0}: no GPU of the catalogue runs fp8",
        ),
        ({"models": [model_entry(), model_entry()]}, r"^models\[1\]\.name: duplicate model name 'test-13b'"),
        ({"models": []}, r"^models: \[\] should be non-empty"),
        ({"model": []}, r"^model: unknown key"),
        ([], r"^the model registry: \[\] is not of type 'object'"),
    ],
)
def test_bad_registry_input_is_rejected_with_its_path(raw: Any, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Registry.parse(raw, CATALOG)


def test_the_error_names_the_first_bad_field_in_document_order() -> None:
    models = [model_entry(name=f"m-{i}") for i in range(12)]
    models[2]["variants"][0]["precision"] = "fp4"
    models[10]["variants"][0]["precision"] = "fp4"
    with pytest.raises(RegistryError, match=r"^models\[2\]"):
        Registry.parse({"models": models}, CATALOG)


def test_registry_files_that_cannot_be_read_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        Registry.load(tmp_path / "missing.yaml", CATALOG)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [")
    with pytest.raises(RegistryError, match="not valid YAML"):
        Registry.load(bad, CATALOG)


def test_a_variant_vllm_cannot_load_is_refused_naming_the_file_and_the_field(tmp_path: Path) -> None:
    """int8 from the model's own 16-bit checkpoint: vLLM has no in-flight int8, so the controller's
    manifests could never render it (issue 16: a re-plan chose it on an MI250X and the controller exited)."""
    import yaml

    raw = yaml.safe_load(EXAMPLE.read_text())
    qwen = next(i for i, m in enumerate(raw["models"]) if m["name"] == "qwen2.5-14b-instruct")
    int8 = next(j for j, v in enumerate(raw["models"][qwen]["variants"]) if v["precision"] == "int8")
    raw["models"][qwen]["variants"][int8] = {"precision": "int8"}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RegistryError, match=rf"models\[{qwen}\]\.variants\[{int8}\]: vLLM cannot load .* int8") as e:
        Registry.load(path, CATALOG)
    assert str(path) in str(e.value)
    assert Registry.load(EXAMPLE, CATALOG)  # with its pre-quantised checkpoint it loads


def test_unknown_model_and_variant_names_say_what_exists(registry: Registry) -> None:
    with pytest.raises(RegistryError, match=r"no model 'gpt-5'.*llama-3.1-8b-instruct"):
        registry.get("gpt-5")
    with pytest.raises(RegistryError, match=r"no variant 'fp4'.*bf16, fp8, int4-awq"):
        registry.get("llama-3.1-8b-instruct").variant("fp4")


EXAMPLE_MODELS = Registry.load(EXAMPLE, CATALOG).models


@given(
    tp=st.sampled_from([1, 2, 4, 8]),
    context=st.integers(1, 131072),
    concurrency=st.integers(1, 256),
    model_index=st.integers(0, 9),
)
def test_need_shrinks_with_tp_and_grows_with_tokens(tp: int, context: int, concurrency: int, model_index: int) -> None:
    model = EXAMPLE_MODELS[model_index % len(EXAMPLE_MODELS)]
    variant = model.variants[0]
    need = per_gpu_need_mib(model, variant, tp, context, concurrency)
    assert per_gpu_need_mib(model, variant, tp * 2, context, concurrency) <= need
    assert per_gpu_need_mib(model, variant, tp, context + 1, concurrency) >= need
    # Splitting never loses memory: tp GPUs together hold at least one GPU's weights and cache.
    single = per_gpu_need(model, variant, 1, context, concurrency)
    assert tp * need >= single.weights_mib + single.kv_cache_mib


def test_every_property_of_the_registry_schema_is_described() -> None:
    schema = json.loads((REPO / "scheduler" / "data" / "model-registry.schema.json").read_text())
    undescribed: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "description" not in prop:
                    undescribed.append(f"{path}.{name}")
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(schema, "$")
    assert undescribed == []
