#!/usr/bin/env bash
# Bring up kisim's Kind cluster on a bare Ubuntu host with an NVIDIA GPU (driver installed):
# Docker + NVIDIA Container Toolkit, kind, nvkind, kubectl, helm; the cluster
# (manifests/kind/kind-gpu.yaml); kube-prometheus-stack, metrics-server and the NVIDIA GPU
# Operator; the model image; the kisim manifests; a least-privilege kubeconfig for kisim.
#
# Usage: scripts/cluster-up.sh [all|prepare|cluster|install|apply|kubeconfig|check|down]
#   all         everything below, in order (default); safe to re-run
#   prepare     host tools: docker, nvidia-container-toolkit, kind, kubectl, helm, go, nvkind
#   cluster     create the nvkind cluster (kept if it exists; RECREATE=1 deletes it first)
#   install     time-slicing config, kube-prometheus-stack, metrics-server, GPU Operator
#   apply       build + load the model image, (pre)load Triton, apply manifests/kisim, wait
#   kubeconfig  write $KISIM_KUBECONFIG for the kisim ServiceAccount
#   check       health of Triton (both pools) and Prometheus through the host ports
#   down        delete the cluster
# Settings (environment): CLUSTER_NAME GPU_SHARING(1|2|4) KIND_NODE_IMAGE PRELOAD_TRITON(1|0)
#   TOKEN_DURATION KISIM_KUBECONFIG and the *_VERSION pins below.
# See docs/real-cluster.md for what each step does and how to undo it.
set -Eeuo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
MAN="${ROOT}/manifests"

CLUSTER_NAME="${CLUSTER_NAME:-kisim}"
CONTEXT="kind-${CLUSTER_NAME}"
GPU_SHARING="${GPU_SHARING:-1}"            # = scenario cluster.nodes[gpu].gpu_sharing
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"     # empty: kind's default node image
PRELOAD_TRITON="${PRELOAD_TRITON:-1}"      # pull Triton once on the host, load into nodes
TOKEN_DURATION="${TOKEN_DURATION:-24h}"
KISIM_KUBECONFIG="${KISIM_KUBECONFIG:-${HOME}/.kube/kisim.kubeconfig}"  # outside the repo: it holds a token
RECREATE="${RECREATE:-0}"

KIND_VERSION="${KIND_VERSION:-v0.29.0}"
KUBECTL_VERSION="${KUBECTL_VERSION:-v1.33.1}"
HELM_VERSION="${HELM_VERSION:-v3.18.3}"
GO_VERSION="${GO_VERSION:-1.24.5}"
NVKIND_VERSION="${NVKIND_VERSION:-latest}"
GPU_OPERATOR_VERSION="${GPU_OPERATOR_VERSION:-}"      # empty: the chart's latest
PROMSTACK_VERSION="${PROMSTACK_VERSION:-}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-}"

TRITON_IMAGE="nvcr.io/nvidia/tritonserver:24.10-py3"  # keep = manifests/kisim/30-*.yaml
MODEL_IMAGE="kisim/mobilenetv4-model:conv_small"
BIN_DIR="/usr/local/bin"

if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

log() { printf '[cluster-up] %s\n' "$*"; }
fail() { printf '[cluster-up] error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
kc() { kubectl --context "${CONTEXT}" "$@"; }
hm() { helm --kube-context "${CONTEXT}" "$@"; }

arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) fail "unsupported architecture $(uname -m)" ;;
  esac
}

# Download $1 to $2 and check it against the sha256 published at $3.
fetch_verified() {
  local url="$1" out="$2" sum_url="$3" want
  curl -fsSL -o "${out}" "${url}"
  want="$(curl -fsSL "${sum_url}" | awk '{print $1}')"
  echo "${want}  ${out}" | sha256sum -c --quiet - || fail "checksum mismatch for ${url}"
}

install_bin() { "${SUDO[@]}" install -m 0755 "$1" "${BIN_DIR}/$2"; }

# ------------------------------------------------------------------------- prepare

ensure_host() {
  [[ "$(uname -s)" == Linux ]] || fail "Linux only"
  have apt-get || fail "apt-get not found: this script supports Ubuntu/Debian hosts"
  have nvidia-smi || fail "nvidia-smi not found: install the NVIDIA driver first (ubuntu-drivers autoinstall; reboot)"
  nvidia-smi -L >/dev/null || fail "the NVIDIA driver is not healthy: fix 'nvidia-smi -L' first"
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q ca-certificates curl gnupg jq tar
}

ensure_docker() {
  if ! have docker; then
    log "installing Docker (docker.io)"
    "${SUDO[@]}" apt-get install -y -q docker.io
  fi
  "${SUDO[@]}" systemctl enable --now docker
  docker info >/dev/null 2>&1 || fail "cannot talk to Docker: add yourself to the docker group ('sudo usermod -aG docker \$USER'), log in again, re-run"
}

ensure_nvidia_toolkit() {
  if ! have nvidia-ctk; then
    log "installing the NVIDIA Container Toolkit"
    curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
      | "${SUDO[@]}" gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
      | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
      | "${SUDO[@]}" tee /etc/apt/sources.list.d/nvidia-container-toolkit.list >/dev/null
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q nvidia-container-toolkit
  fi
  # nvkind's requirements: nvidia as Docker's default runtime, and GPUs selectable by
  # volume mounts (how a kind node container gets its GPUs).
  "${SUDO[@]}" nvidia-ctk runtime configure --runtime=docker --set-as-default --cdi.enabled
  "${SUDO[@]}" nvidia-ctk config --set accept-nvidia-visible-devices-as-volume-mounts=true --in-place
  "${SUDO[@]}" systemctl restart docker
  docker run --rm -v /dev/null:/var/run/nvidia-container-devices/all ubuntu:22.04 nvidia-smi -L >/dev/null \
    || fail "Docker cannot hand GPUs to containers via volume mounts (see docs/real-cluster.md)"
}

ensure_tools() {
  local a tmp
  a="$(arch)"
  tmp="$(mktemp -d)"
  if ! have kind; then
    log "installing kind ${KIND_VERSION}"
    fetch_verified "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-${a}" "${tmp}/kind" \
      "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-${a}.sha256sum"
    install_bin "${tmp}/kind" kind
  fi
  if ! have kubectl; then
    log "installing kubectl ${KUBECTL_VERSION}"
    fetch_verified "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${a}/kubectl" "${tmp}/kubectl" \
      "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${a}/kubectl.sha256"
    install_bin "${tmp}/kubectl" kubectl
  fi
  if ! have helm; then
    log "installing helm ${HELM_VERSION}"
    fetch_verified "https://get.helm.sh/helm-${HELM_VERSION}-linux-${a}.tar.gz" "${tmp}/helm.tgz" \
      "https://get.helm.sh/helm-${HELM_VERSION}-linux-${a}.tar.gz.sha256sum"
    tar -C "${tmp}" -xzf "${tmp}/helm.tgz"
    install_bin "${tmp}/linux-${a}/helm" helm
  fi
  if ! have nvkind; then
    if ! have go && [[ ! -x /usr/local/go/bin/go ]]; then
      log "installing Go ${GO_VERSION} (to build nvkind)"
      fetch_verified "https://go.dev/dl/go${GO_VERSION}.linux-${a}.tar.gz" "${tmp}/go.tgz" \
        "https://dl.google.com/go/go${GO_VERSION}.linux-${a}.tar.gz.sha256"
      "${SUDO[@]}" rm -rf /usr/local/go
      "${SUDO[@]}" tar -C /usr/local -xzf "${tmp}/go.tgz"
    fi
    export PATH="/usr/local/go/bin:${PATH}"
    log "installing nvkind ${NVKIND_VERSION}"
    GOBIN="${tmp}" go install "github.com/NVIDIA/nvkind/cmd/nvkind@${NVKIND_VERSION}"
    install_bin "${tmp}/nvkind" nvkind
  fi
  rm -rf "${tmp}"
}

prepare() {
  ensure_host
  ensure_docker
  ensure_nvidia_toolkit
  ensure_tools
}

# ------------------------------------------------------------------------- cluster

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }

create_cluster() {
  if cluster_exists && [[ "${RECREATE}" == 1 ]]; then
    log "deleting cluster ${CLUSTER_NAME} (RECREATE=1)"
    kind delete cluster --name "${CLUSTER_NAME}"
  fi
  if cluster_exists; then
    log "cluster ${CLUSTER_NAME} exists; keeping it"
  else
    local args=(cluster create --name "${CLUSTER_NAME}" --config-template "${MAN}/kind/kind-gpu.yaml")
    [[ -n "${KIND_NODE_IMAGE}" ]] && args+=(--image "${KIND_NODE_IMAGE}")
    log "creating cluster ${CLUSTER_NAME} with nvkind"
    nvkind "${args[@]}"
  fi
  kc wait --for=condition=Ready nodes --all --timeout=300s
}

gpu_node() {
  kc get nodes -l kisim.io/node-class=gpu -o jsonpath='{.items[0].metadata.name}'
}

# ------------------------------------------------------------------------- install

install_stack() {
  log "helm repositories"
  helm repo add nvidia https://helm.ngc.nvidia.com/nvidia --force-update >/dev/null
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update >/dev/null
  helm repo update >/dev/null

  # Namespace gpu-operator + the time-slicing ConfigMap, before the operator reads it.
  kc apply -f "${MAN}/gpu-operator/"

  log "kube-prometheus-stack (Prometheus, kube-state-metrics, ServiceMonitors)"
  local ver=()
  [[ -n "${PROMSTACK_VERSION}" ]] && ver=(--version "${PROMSTACK_VERSION}")
  hm upgrade -i monitoring prometheus-community/kube-prometheus-stack "${ver[@]}" \
    -n monitoring --create-namespace -f "${MAN}/helm/kube-prometheus-stack-values.yaml" \
    --wait --timeout 15m

  log "metrics-server (CPU metrics for the HPA)"
  ver=()
  [[ -n "${METRICS_SERVER_VERSION}" ]] && ver=(--version "${METRICS_SERVER_VERSION}")
  hm upgrade -i metrics-server metrics-server/metrics-server "${ver[@]}" \
    -n kube-system -f "${MAN}/helm/metrics-server-values.yaml" --wait --timeout 5m

  log "NVIDIA GPU Operator (driver.enabled=false)"
  ver=()
  [[ -n "${GPU_OPERATOR_VERSION}" ]] && ver=(--version "${GPU_OPERATOR_VERSION}")
  hm upgrade -i gpu-operator nvidia/gpu-operator "${ver[@]}" \
    -n gpu-operator -f "${MAN}/helm/gpu-operator-values.yaml" --wait --timeout 20m

  local node
  node="$(gpu_node)"
  case "${GPU_SHARING}" in
    1) kc label node "${node}" nvidia.com/device-plugin.config- >/dev/null 2>&1 || true ;;
    2 | 4) kc label node "${node}" "nvidia.com/device-plugin.config=shared-${GPU_SHARING}" --overwrite ;;
    *) fail "GPU_SHARING must be 1, 2 or 4 (keys of manifests/gpu-operator/time-slicing-config.yaml)" ;;
  esac

  log "waiting for ${node} to advertise ${GPU_SHARING} nvidia.com/gpu"
  local n=0 got=""
  until got="$(kc get node "${node}" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')" \
      && [[ -n "${got}" && "${got}" -ge "${GPU_SHARING}" ]]; do
    n=$((n + 1))
    ((n > 120)) && fail "no nvidia.com/gpu on ${node} after 10 min (kubectl -n gpu-operator get pods)"
    sleep 5
  done
  log "${node}: ${got} x nvidia.com/gpu allocatable"
}

# ------------------------------------------------------------------------- apply

worker_nodes() {
  kind get nodes --name "${CLUSTER_NAME}" | grep -v control-plane | paste -sd, -
}

apply_kisim() {
  log "building the model image ${MODEL_IMAGE}"
  docker build -q -f "${MAN}/model/Dockerfile" -t "${MODEL_IMAGE}" "${ROOT}/bridge" >/dev/null
  kind load docker-image "${MODEL_IMAGE}" --name "${CLUSTER_NAME}" --nodes "$(worker_nodes)"
  if [[ "${PRELOAD_TRITON}" == 1 ]]; then
    # Image pull is not part of pod start-up in the twin (nor in the Kubernetes start-up
    # SLO): put the ~15 GB Triton image on every worker once, now.
    log "pulling ${TRITON_IMAGE} and loading it into the workers (once; takes a while)"
    docker pull -q "${TRITON_IMAGE}" >/dev/null
    kind load docker-image "${TRITON_IMAGE}" --name "${CLUSTER_NAME}" --nodes "$(worker_nodes)"
  fi
  log "applying manifests/kisim"
  kc apply -f "${MAN}/kisim/"
  kc -n kisim rollout status deployment/triton-cpu --timeout=15m
  kc -n kisim rollout status deployment/triton-gpu --timeout=15m
}

# ------------------------------------------------------------------------- kubeconfig

write_kubeconfig() {
  local server ca token tmp
  server="$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  token="$(kc -n kisim create token kisim --duration "${TOKEN_DURATION}")"
  tmp="$(mktemp)"
  base64 -d <<<"${ca}" >"${tmp}"
  mkdir -p "$(dirname -- "${KISIM_KUBECONFIG}")"
  rm -f "${KISIM_KUBECONFIG}"
  (
    umask 077
    kubectl --kubeconfig "${KISIM_KUBECONFIG}" config set-cluster "${CLUSTER_NAME}" \
      --server "${server}" --certificate-authority "${tmp}" --embed-certs >/dev/null
    kubectl --kubeconfig "${KISIM_KUBECONFIG}" config set-credentials kisim --token "${token}" >/dev/null
    kubectl --kubeconfig "${KISIM_KUBECONFIG}" config set-context kisim \
      --cluster "${CLUSTER_NAME}" --user kisim --namespace kisim >/dev/null
    kubectl --kubeconfig "${KISIM_KUBECONFIG}" config use-context kisim >/dev/null
  )
  rm -f "${tmp}"
  # Prove the Role is what kisim needs, and no more.
  kubectl --kubeconfig "${KISIM_KUBECONFIG}" auth can-i patch deployments --subresource=scale -n kisim >/dev/null \
    || fail "the kisim ServiceAccount cannot patch deployments/scale"
  if kubectl --kubeconfig "${KISIM_KUBECONFIG}" auth can-i patch deployments --subresource=scale -n default >/dev/null 2>&1; then
    fail "the kisim ServiceAccount can write outside namespace kisim"
  fi
  log "wrote ${KISIM_KUBECONFIG} (context kisim, token valid ${TOKEN_DURATION})"
}

# ------------------------------------------------------------------------- check, down

check() {
  local url
  for url in http://127.0.0.1:30800/v2/health/ready http://127.0.0.1:30810/v2/health/ready \
      http://127.0.0.1:30090/-/ready; do
    curl -fsS -o /dev/null --retry 30 --retry-delay 2 --retry-all-errors "${url}" \
      || fail "${url} is not answering"
    log "ok: ${url}"
  done
}

down() {
  if cluster_exists; then kind delete cluster --name "${CLUSTER_NAME}"; fi
  rm -f "${KISIM_KUBECONFIG}"
}

main() {
  case "${1:-all}" in
    all)
      prepare
      create_cluster
      install_stack
      apply_kisim
      write_kubeconfig
      check
      log "done. Next: kisim eval --real --backend kubernetes --kubeconfig ${KISIM_KUBECONFIG} --context kisim --namespace kisim"
      ;;
    prepare) prepare ;;
    cluster) create_cluster ;;
    install) install_stack ;;
    apply) apply_kisim ;;
    kubeconfig) write_kubeconfig ;;
    check) check ;;
    down) down ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
}

main "$@"
