#!/bin/sh
# make bench: one throwaway cluster with durable commit, then the benchmark.
set -eu
cd "$(dirname "$0")/.."
exec pg_virtualenv -o fsync=on -o synchronous_commit=on \
	-o max_connections=200 -o shared_buffers=256MB \
	-- sh bench/run-in-cluster.sh
