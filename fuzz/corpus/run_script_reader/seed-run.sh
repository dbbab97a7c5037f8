#!/bin/sh
set -eu
docker network create flower
docker run -d \
  --name superlink \
  --network flower \
  --user 49999:49999 \
  -v '/srv/my certs/superlink-certificates:/app/certificates:ro' \
  --mount type=bind,source=/srv/state,target=/app/state \
  flwr/superlink:1.42.0 \
  --ssl-keyfile certificates/server.key \
  --database state/state.db
docker run --rm -d --name=supernode-1 -v ./ca:/app/ca:ro flwr/supernode:1.42.0 --insecure
