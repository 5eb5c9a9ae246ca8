"""The local play: everything that stands in for a cluster on one machine, apart from the product.

Stand-ins for the Kubernetes API (`kube_standin`, kmock taught what an API server does), vLLM's
`/metrics` (`vllm_standin`) and dcgm-exporter (`dcgm_standin`), a simulated fleet served from one
process (`fleet_server`), the local Prometheus/Alertmanager/exporter processes (`localstack`), and
`egs demo` itself (`demo`, `demo_cluster`, `demo_replay`, `demo_report`). The demo, the tests and
the benchmarks share it. It may import the product; no product module imports it (an import
contract in pyproject.toml), and `egs demo` loads it only when the demo runs.
"""
