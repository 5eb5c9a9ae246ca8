# The EGS image: the `egs` command (exporter, controller, api, ...). Minimal: the package and its
# runtime dependencies on python:3.12-slim, as the Helm chart runs it (non-root for the controller and
# API; the chart runs the exporter as root only to open the kubelet's pod-resources socket).
FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common common
COPY egs egs
COPY exporter exporter
COPY scheduler scheduler
COPY autoscaler autoscaler
COPY dashboards dashboards
COPY alerts alerts
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /
USER 65532
ENTRYPOINT ["egs"]
