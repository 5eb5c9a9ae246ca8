# The control-plane image: `egs controller` (the InferenceEndpoint operator) and `egs api` (the endpoint
# API), images/control-plane.requirements' packages, non-root. Build from the repository root:
#   docker build -f images/control-plane.Dockerfile -t egs-control-plane .
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY images/control-plane.requirements images/
COPY common common
COPY egs egs
COPY exporter exporter
COPY scheduler scheduler
COPY autoscaler autoscaler
COPY dashboards dashboards
COPY alerts alerts
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r images/control-plane.requirements

FROM python:3.12-slim
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH
USER 65532
ENTRYPOINT ["egs"]
CMD ["controller", "--help"]
