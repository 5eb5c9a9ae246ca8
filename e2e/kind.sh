#!/usr/bin/env bash
# End to end on a kind cluster, for a machine with Docker (CI here has no Docker engine, so CI runs only
# `bash -n`, shellcheck and `helm template` with e2e/kind-values.yaml: tests/test_kind_e2e.py).
#
#   e2e/kind.sh            # create, install, create an endpoint, print its status, tear down
#   KEEP=1 e2e/kind.sh     # leave the cluster up (kind delete cluster --name egs-e2e)
#
# Steps: a kind cluster; kube-prometheus-stack (release kps, namespace monitoring); the two EGS images
# (images/*.Dockerfile) built and loaded into kind; the chart helm/egs beside it with e2e/kind-values.yaml
# (simulated exporter, one H100 class with a warm pool of one node); the kind node labelled as NVIDIA
# GPU Feature Discovery labels an 8 x H100 node, and its status given 8 `nvidia.com/gpu` (there is no
# device plugin); the InferenceEndpoint e2e/endpoint.yaml; then the script waits until the controller
# has written the endpoint's status (a phase) and prints it. The vLLM image is not pulled: the phase is
# Pending or Provisioning, never Ready, and the script does not wait for it. Last, it prints Prometheus'
# `up` for the EGS scrape jobs (exporter, controller, API), as docs/install.md's checks do.
#
# Needs docker, kind, kubectl and helm on PATH. Environment: CLUSTER (egs-e2e), KEEP (0),
# KPS_VERSION (the kube-prometheus-stack chart version; empty: the latest), TIMEOUT (seconds to wait
# for the status, 300).
set -euo pipefail

CLUSTER=${CLUSTER:-egs-e2e}
KEEP=${KEEP:-0}
KPS_VERSION=${KPS_VERSION:-}
TIMEOUT=${TIMEOUT:-300}
NAMESPACE=egs-system
IMAGES=(exporter control-plane)
TAG=e2e
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[kind-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { log "needs $tool on PATH"; exit 2; }
done
docker info >/dev/null 2>&1 || { log "needs a running Docker engine (docker info failed)"; exit 2; }

teardown() {
  if [[ "$KEEP" == 1 ]]; then
    log "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  else
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >&2 || true
  fi
}
trap teardown EXIT

log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 180s >&2
CONTEXT="kind-$CLUSTER"
k() { kubectl --context "$CONTEXT" "$@"; }

log "installing kube-prometheus-stack (release kps, namespace monitoring)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >&2
version_args=()
if [[ -n "$KPS_VERSION" ]]; then version_args=(--version "$KPS_VERSION"); fi
helm --kube-context "$CONTEXT" upgrade --install kps prometheus-community/kube-prometheus-stack \
  "${version_args[@]}" --namespace monitoring --create-namespace \
  --set fullnameOverride=kps --set grafana.sidecar.dashboards.searchNamespace=ALL \
  --wait --timeout 10m >&2

for image in "${IMAGES[@]}"; do
  log "building egs-$image:$TAG (images/$image.Dockerfile) and loading it into the cluster"
  docker build -f "$REPO/images/$image.Dockerfile" -t "egs-$image:$TAG" "$REPO" >&2
  kind load docker-image "egs-$image:$TAG" --name "$CLUSTER" >&2
done

NODE=$(k get nodes -o jsonpath='{.items[0].metadata.name}')
log "labelling $NODE as GPU Feature Discovery labels an 8 x H100 node, with 8 nvidia.com/gpu"
k label node "$NODE" --overwrite \
  nvidia.com/gpu.present=true \
  nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 \
  nvidia.com/gpu.memory=81559 \
  nvidia.com/gpu.count=8 \
  nvidia.com/gpu.family=hopper \
  nvidia.com/gpu.compute.major=9 \
  nvidia.com/gpu.compute.minor=0 >&2
# No device plugin runs: advertise the GPUs as an extended resource on the node's status.
k patch node "$NODE" --subresource=status --type=json \
  -p '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "8"}]' >&2

log "namespace $NAMESPACE at the privileged Pod Security level (the exporter mounts host paths: docs/install.md)"
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >&2
k label namespace "$NAMESPACE" --overwrite pod-security.kubernetes.io/enforce=privileged >&2

log "installing helm/egs beside it (e2e/kind-values.yaml)"
helm --kube-context "$CONTEXT" upgrade --install egs "$REPO/helm/egs" --namespace "$NAMESPACE" \
  --values "$REPO/e2e/kind-values.yaml" --wait --timeout 5m >&2

log "creating the InferenceEndpoint team-a/chat"
k create namespace team-a --dry-run=client -o yaml | k apply -f - >&2
k apply -f "$REPO/e2e/endpoint.yaml" >&2

log "waiting up to ${TIMEOUT}s for the controller to write its status"
deadline=$((SECONDS + TIMEOUT))
phase=""
while [[ -z "$phase" ]]; do
  if ((SECONDS > deadline)); then
    log "no status within ${TIMEOUT}s; the controller's log:"
    k logs -n "$NAMESPACE" deployment/egs-controller -c controller --tail=50 >&2 || true
    exit 1
  fi
  sleep 3
  phase=$(k get inferenceendpoint chat -n team-a -o jsonpath='{.status.phase}')
done
log "phase: $phase"
k get inferenceendpoint chat -n team-a -o jsonpath='{.status}'
echo

# As docs/install.md's "See that it works": Prometheus scrapes every EGS job (exporter, controller, API).
log 'Prometheus: up{job=~"egs-.*"} (each target 1 once scraped)'
k -n monitoring exec statefulset/prometheus-kps-prometheus -c prometheus -- \
  wget -qO- 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D~%22egs-.%2A%22%7D' ||
  log "could not query Prometheus (its first scrapes take up to a minute)"
echo
