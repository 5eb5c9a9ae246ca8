"""What tensor parallelism costs a replica in throughput: the all-reduce traffic of each decoding
step over the link between its GPUs.

Part of the scheduler's pure core. `scheduler.fleet.shapes` gives every multi-GPU shape its factor
from `tensor_parallel_throughput`; the engines divide the shape's price by it (they minimise cost
per unit of throughput, so that a replica over PCIe that serves 16% less must be 16% cheaper to be
chosen), and the plan shows it beside each replica.

The model is of decoding, the steady state of a serving replica, which memory bandwidth bounds:

- one decoding step makes one token for each of the replica's `concurrency` sequences; each GPU
  reads its share of the weights and of the KV cache (half of each sequence's context on average)
  from its memory: compute = those bytes / the class's memory bandwidth;
- every layer all-reduces its attention and its MLP output: 2 x layers all-reduces of
  concurrency x hidden_size activations of ACTIVATION_BYTES (vLLM all-reduces in the 16-bit
  activation type whatever the weights' precision). A ring all-reduce sends 2 (tp - 1) / tp of
  the message from each GPU over one direction of its link (half the catalogue's both-directions
  bandwidth), and each all-reduce pays the link's latency (`GpuModel.link_latency_us`);
- throughput = compute / (compute + communication); 1.0 on one GPU.

A replica over several nodes (pipeline parallel over RDMA) gets the factor of its tensor-parallel
group within a node; the pipeline's own transfers (one activation per token per stage boundary)
are small beside it and not counted. Not modelled either: prefill, where the all-reduce carries
whole prompts and compute is the bound (over PCIe it costs more than decoding does), and
communication overlapping compute (which vLLM does not do for decoding).
"""

from __future__ import annotations

from scheduler.catalog import GpuModel
from scheduler.registry import BYTES_PER_KV_ELEMENT, GIB, Model, Variant

ACTIVATION_BYTES = 2
"""Bytes of one activation that tensor-parallel GPUs all-reduce (fp16/bf16)."""
ALL_REDUCES_PER_LAYER = 2
"""One after attention, one after the MLP (Megatron-style tensor parallelism, as vLLM shards)."""


def tensor_parallel_throughput(
    model: Model, variant: Variant, gpu: GpuModel, tp: int, context: int | None = None, concurrency: int | None = None
) -> float:
    """The share of its undivided decoding throughput a replica keeps when split over `tp` GPUs
    of `gpu` (1.0 for tp = 1), at the request's context and concurrency (the model's serving
    defaults when None), rounded to 4 decimals."""
    if tp <= 1:
        return 1.0
    arch = model.architecture
    sequences = concurrency or model.serving.concurrency
    resident = sequences * (context or model.serving.context_tokens) / 2
    kv_dtype = variant.kv_cache_dtype or model.serving.kv_cache_dtype
    kv_per_token = 2 * arch.layers * -(-arch.kv_heads // tp) * arch.head_dim * BYTES_PER_KV_ELEMENT[kv_dtype]
    read_bytes = variant.weights_gib * GIB / tp + kv_per_token * resident
    compute_s = read_bytes / (gpu.memory_bandwidth_gbs * 1e9)
    message = sequences * arch.hidden * ACTIVATION_BYTES
    one_way = gpu.interconnect_gbs / 2 * 1e9
    per_all_reduce = 2 * (tp - 1) / tp * message / one_way + gpu.link_latency_us * 1e-6
    communication_s = ALL_REDUCES_PER_LAYER * arch.layers * per_all_reduce
    return round(compute_s / (compute_s + communication_s), 4)
