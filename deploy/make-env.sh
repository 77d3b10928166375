#!/bin/sh
# Prints an .env for docker-compose.yml with a fresh random value for every
# secret the stack needs: deploy/make-env.sh > .env
set -eu
secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
for name in VOLLEY_EXPORTER_TOKEN INFLUXDB_TOKEN INFLUXDB_PASSWORD IM_SECRET GRAFANA_ADMIN_PASSWORD; do
  printf '%s=%s\n' "$name" "$(secret)"
done
