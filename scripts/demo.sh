#!/usr/bin/env bash
# The main job, end to end: scaffold a demo project, start it, verify it.
# Uses the official images when the engine has them or can pull them; otherwise (an air-gapped machine
# like our CI) builds stand-in base images from Debian packages and points the project at them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${DEMO_DIR:-$root/demo}
cli="node $root/bin/run.js"
started=$SECONDS
# The total time, also when a step fails.
trap 'echo "==> npm run demo: $((SECONDS - started)) s in all"' EXIT

bash fixtures/images/ensure-docker.sh

image_flags=()
if [[ "${CREATE_GATEWAY_OFFLINE:-}" != 1 ]] && { docker image inspect python:3.12-slim nginx:1.30 >/dev/null 2>&1 ||
  { timeout 120 docker pull -q python:3.12-slim >/dev/null 2>&1 && timeout 120 docker pull -q nginx:1.30 >/dev/null 2>&1; }; }; then
  echo "==> using the official images python:3.12-slim and nginx:1.30"
else
  echo "==> no registry: building offline stand-in images from Debian packages"
  # Only what the demo runs: the Django base and NGINX (not Pebble or Certbot, which only the tests use).
  bash fixtures/images/build.sh python nginx
  image_flags=(--python-image create-gateway-offline/python:forky --nginx-image create-gateway-offline/nginx:forky)
fi

if [[ -f "$dir/gateway.yaml" ]]; then
  echo "==> $dir exists: stopping its stack and scaffolding again"
  $cli down --dir "$dir" || true
  rm -rf "$dir"
fi

$cli init "$dir" --yes --name demo --http-port "${DEMO_HTTP_PORT:-8080}" --https-port "${DEMO_HTTPS_PORT:-8443}" --cache /secure/=30s "${image_flags[@]}"
$cli up --dir "$dir"
$cli verify --dir "$dir"
echo
echo "The demo stack is running. Stop it with: $cli down --dir $dir"
