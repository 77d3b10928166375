#!/bin/sh
# Runs once, after InfluxDB 2's first setup: maps database "volley" to the
# bucket, so InfluxQL (Grafana's dashboards) reads what the exporter writes.
set -e
influx v1 dbrp create \
  --org "$DOCKER_INFLUXDB_INIT_ORG" \
  --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
  --db volley --rp autogen --default
