#!/bin/sh
# make bench: the releases of RELEASES built beside the current code
# (bench/build-releases.sh), one throwaway cluster with durable commit, the
# benchmark and the releases side by side (bench/releases.sh); then the
# sharded shop's (sharding/bench/shards.sh: a proxy and two shard clusters
# of its own).  BENCH_WORKLOADS="shards" runs only the latter; a list
# without "shards" leaves it out.
set -eu
cd "$(dirname "$0")/.."
case " ${BENCH_WORKLOADS:-} " in
	" shards ") ;;
	*)
		case " ${BENCH_WORKLOADS:-} " in
			*" releases "*|"  ") sh bench/build-releases.sh ;;
		esac
		pg_virtualenv -t -o fsync=on -o synchronous_commit=on -o wal_level=logical \
			-o max_connections=200 -o shared_buffers=256MB \
			-- sh bench/run-in-cluster.sh
		;;
esac
case " ${BENCH_WORKLOADS:-} " in
	*" shards "*|"  ") sh sharding/bench/shards.sh ;;
esac
