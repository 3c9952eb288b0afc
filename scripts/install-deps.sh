#!/usr/bin/env bash
# Installs the Debian packages the tests and the benchmark smoke need, if any is missing:
#   curl (HTTP/2-capable client), openssl (s_client for the TLS tests), promtool (package
#   prometheus), wrk, h2load (nghttp2-client),
#   nginx, haproxy and varnish (benchmark peers), taskset (util-linux),
#   etcd and etcdctl (etcd-server, etcd-client: the fleet tests start etcd on loopback).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

declare -A pkg_for=(
  [curl]=curl
  [openssl]=openssl
  [promtool]=prometheus
  [wrk]=wrk
  [h2load]=nghttp2-client
  [nginx]=nginx
  [haproxy]=haproxy
  [varnishd]=varnish
  [taskset]=util-linux
  [etcd]=etcd-server
  [etcdctl]=etcd-client
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${pkg_for[$cmd]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
# Package install scripts must not start system nginx/haproxy services on this machine.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ -n "$made_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
