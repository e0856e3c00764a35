#!/usr/bin/env bash
# Installs every build, test and runtime dependency from Debian 12 packages.
# Idempotent: apt-get skips what is already present.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git ccache
  clang-14 llvm-14 libclang-rt-14-dev bpftool libbpf-dev libelf-dev zlib1g-dev
  libxxhash-dev libconcurrentqueue-dev libabsl-dev
  libyaml-cpp-dev libsimdjson-dev libcpp-httplib-dev libcli11-dev
  libspdlog-dev libfmt-dev libpcap-dev libcurl4-openssl-dev libssl-dev
  catch2 libbenchmark-dev
  pybind11-dev python3-dev python3-pytest python3-numpy python3-pandas python3-yaml
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libre2-dev python3-grpcio python3-grpc-tools
  libarchive-dev tshark prometheus
  iproute2 iputils-ping iptables nftables iperf3 dnsmasq-base dnsutils ethtool procps tcpdump openssl curl time
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # As root (a fresh machine may have no sudo at all) apt-get runs directly.
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps.sh: run as root (sudo is not installed)" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
