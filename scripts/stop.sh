#!/usr/bin/env bash
# `make stop`: stops the cluster that `make run` started.
source "$(dirname "$0")/env.sh"
bash "$REPO/scripts/cluster.sh" "$RUN_DATADIR" 0 stop
