# The exporter image: `egs exporter` on every GPU node. Only the exporter's packages
# (images/exporter.requirements: no Kubernetes client, scipy or API server), the NVIDIA and AMD
# bindings included. The drivers' libraries come from the node: NVML through the NVIDIA container
# runtime, libamd_smi.so from the host's ROCm (the chart mounts it). Build from the repository root:
#   docker build -f images/exporter.Dockerfile -t egs-exporter .
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY images/exporter.requirements images/
COPY common common
COPY egs egs
COPY exporter exporter
COPY scheduler scheduler
COPY autoscaler autoscaler
COPY dashboards dashboards
COPY alerts alerts
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r images/exporter.requirements

FROM python:3.12-slim
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH
# The chart runs it as root without capabilities, to open the kubelet's root-owned pod-resources socket.
USER 65532
ENTRYPOINT ["egs"]
CMD ["exporter", "--help"]
