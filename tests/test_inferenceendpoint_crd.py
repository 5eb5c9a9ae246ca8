"""The InferenceEndpoint CRD: a valid apiextensions/v1 object, and its schema accepts the shipped
examples and names the field of every bad one."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from jsonschema import Draft202012Validator

from autoscaler import endpoint

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "inferenceendpoints.yaml"


def _example(**spec: object) -> dict[str, object]:
    base = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.99, "replicas": {"min": 1, "max": 2}}
    return {
        "apiVersion": endpoint.API_VERSION,
        "kind": endpoint.KIND,
        "metadata": {"name": "chat", "namespace": "ns"},
        "spec": {**base, **spec},
    }


def test_the_crd_is_a_valid_custom_resource_definition() -> None:
    kubernetes_validate.validate(endpoint.crd(), "1.31", strict=True)
    crd = endpoint.crd()
    assert crd["metadata"]["name"] == f"{endpoint.PLURAL}.{endpoint.GROUP}"
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Model", "Phase", "Variant", "GPU Class", "Ready", "Desired"} <= columns
    Draft202012Validator.check_schema(endpoint.schema())


def test_the_status_phases_are_the_ones_the_controller_writes() -> None:
    status = endpoint.schema()["properties"]["status"]["properties"]
    assert tuple(status["phase"]["enum"]) == endpoint.PHASES
    scaling = endpoint.schema()["properties"]["spec"]["properties"]["scaling"]
    assert tuple(scaling["enum"]) == endpoint.SCALING


def test_the_shipped_examples_are_valid_and_parse() -> None:
    objects = list(yaml.safe_load_all(EXAMPLES.read_text()))
    parsed = [endpoint.parse(o) for o in objects]
    assert [p.key for p in parsed] == ["team-a/chat", "team-b/reasoning"]
    assert parsed[1].gpu_classes == ("H100-80GB", "MI300X")
    assert parsed[1].scaling == "keda"
    assert parsed[0].scaling == "egs"
    request = parsed[1].request(3)
    assert (request.replicas, request.min_quality, request.context, request.namespace) == (3, 1.0, 16384, "team-b")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (_example(qualityFloor=1.5), "spec.qualityFloor"),
        (_example(replicas={"min": 3, "max": 2}), "spec.replicas.min"),
        (_example(replicas={"min": 1}), "spec.replicas"),
        (_example(scaling="vpa"), "spec.scaling"),
        (_example(gpuClasses="H100-80GB"), "spec.gpuClasses"),
        (_example(contextTokens=0), "spec.contextTokens"),
        (_example(colour="blue"), "spec"),
        ({**_example(), "metadata": {"name": "Not_A_Name"}}, "metadata.name"),
        ({**_example(), "spec": {"qualityFloor": 1.0, "replicas": {"min": 1, "max": 1}}}, "spec"),
    ],
)
def test_a_bad_endpoint_names_its_field(obj: dict[str, object], field: str) -> None:
    with pytest.raises(endpoint.EndpointError) as caught:
        endpoint.parse(obj)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("record", ["shapeChange", "consolidation"])
def test_a_status_may_name_as_many_replaced_workloads_as_replicas_max_allows(record: str) -> None:
    # Every replica may be a workload of its own shape: a list capped below replicas.max made every status
    # write of such an endpoint fail (422) while its change was under way (rev11's finding 6).
    replicas_max = endpoint.schema()["properties"]["spec"]["properties"]["replicas"]["properties"]["max"]["maximum"]
    names = [f"chat-{i}" for i in range(replicas_max)]
    at = {"at": "2026-12-07T17:00:00Z"} if record == "consolidation" else {}
    validator = Draft202012Validator(endpoint.schema()["properties"]["status"])
    assert list(validator.iter_errors({"phase": "Ready", record: {"replacing": names, **at}})) == []
    assert list(validator.iter_errors({record: {"replacing": [*names, "one-more"], **at}})) != []
