# sharding/test/lib.sh: a sharded shop on this machine, for make test-shards,
# make demo SHARDS=N and make bench (sourced after test/lib.sh).
#
# One proxy cluster and SHARDS shard clusters, each a local cluster of its
# own (initdb once, copied), run as the postgres user, listening on Unix
# sockets in $SHOP_DIR only: the proxy on port $SHOP_PORT, shard k on
# $SHOP_PORT + 1 + k.  fsync is off (the tests kill servers, never the
# machine) but synchronous_commit stays on: an order a buyer was told of
# must survive its shard's crash.  Database "shop" on every shard holds the checkout
# and checkout_shard extensions; database "proxy" on the proxy holds
# plproxy and checkout_proxy, and the PL/Proxy cluster 'checkout_shards'.
#
#   start_shop N      start the proxy and N shard clusters
#   new_shop N        fresh databases: a shop over shards 0..N-1
#   on_shard K SQL... psql on shard K's database (sql's rules)
#   on_proxy SQL...   psql on the proxy's database
#   shard_value K SQL, proxy_value SQL   one value from there
#   shard_conninfo K  the connection string of shard K's database
#   run_sale BUYERS CLIENTS   the sale of sharding/test/sale.sql, with pgbench
#   stop_shard K / start_shard K   stop (immediate) and start a shard
#   stop_shop         stop every cluster and remove $SHOP_DIR
#   wait_until NODE DB SQL         poll until SQL is true there
#   hold NODE NAME SQL / release NODE NAME   a session that holds a lock

: "${SHOP_PORT:=6600}"
PGBIN=$(pg_config --bindir)

# pg_ctl and initdb as the postgres user, in $SHOP_DIR
shop_ctl() {
	as_postgres "$PGBIN/pg_ctl" "$@"
}

# the cluster of node NAME (proxy, shard0, ...) and its port
node_port() {
	case $1 in
	proxy) echo "$SHOP_PORT" ;;
	shard*) echo $((SHOP_PORT + 1 + ${1#shard})) ;;
	esac
}

start_node() {
	shop_ctl start -w -s -D "$SHOP_DIR/$1" -l "$SHOP_DIR/$1.log" \
		-o "-p $(node_port "$1") -k $SHOP_DIR -c listen_addresses='' -c max_connections=${SHOP_CONNECTIONS:-200} -c fsync=${SHOP_FSYNC:-off} -c synchronous_commit=${SHOP_SYNC:-on} -c shared_buffers=64MB"
}

start_shop() {
	SHOP_SHARDS=$1
	SHOP_DIR=$(mktemp -d /tmp/checkout-shop.XXXXXX)
	chmod 755 "$SHOP_DIR"
	[ -n "$AS_POSTGRES" ] && chown postgres "$SHOP_DIR"
	as_postgres "$PGBIN/initdb" -D "$SHOP_DIR/template" -A trust -U postgres \
		--no-sync -E UTF8 --locale=C >/dev/null || return 1
	for node in proxy $(seq -f 'shard%g' 0 $((SHOP_SHARDS - 1))); do
		as_postgres cp -a "$SHOP_DIR/template" "$SHOP_DIR/$node" || return 1
		start_node "$node" || { cat "$SHOP_DIR/$node.log" >&2; return 1; }
	done
}

stop_shop() {
	[ -n "${SHOP_DIR:-}" ] && [ -d "$SHOP_DIR" ] || return 0
	for node in "$SHOP_DIR"/proxy "$SHOP_DIR"/shard*; do
		[ -f "$node/postmaster.pid" ] && shop_ctl stop -s -m fast -D "$node" >/dev/null 2>&1
	done
	rm -rf "$SHOP_DIR"
}

stop_shard() {
	shop_ctl stop -s -m immediate -D "$SHOP_DIR/shard$1"
}

start_shard() {
	start_node "shard$1"
}

on_node() {
	_node=$1 _db=$2
	shift 2
	PGHOST=$SHOP_DIR PGPORT=$(node_port "$_node") PGUSER=postgres sql "$_db" "$@"
}

on_shard() {
	_k=$1
	shift
	on_node "shard$_k" shop "$@"
}

on_proxy() {
	on_node proxy proxy "$@"
}

# shard_value K SQL: one value from shard K's database
shard_value() {
	PGHOST=$SHOP_DIR PGPORT=$(node_port "shard$1") PGUSER=postgres \
		psql -X -q -v ON_ERROR_STOP=1 -d shop -At -c "$2"
}

shard_conninfo() {
	echo "host=$SHOP_DIR port=$(node_port "shard$1") dbname=shop connect_timeout=2"
}

new_shop() {
	_n=$1
	_parts=""
	for k in $(seq 0 $((_n - 1))); do
		on_node "shard$k" postgres "SET client_min_messages = warning" \
			"DROP DATABASE IF EXISTS shop WITH (FORCE)" "CREATE DATABASE shop" || return 1
		on_shard "$k" "CREATE EXTENSION checkout" "CREATE EXTENSION checkout_shard" \
			"SELECT checkout_shard.shop_shard_init($k)" >/dev/null || return 1
		_parts="$_parts, p$k '$(shard_conninfo "$k")'"
	done
	on_node proxy postgres "SET client_min_messages = warning" \
		"DROP DATABASE IF EXISTS proxy WITH (FORCE)" "CREATE DATABASE proxy" || return 1
	on_proxy "CREATE EXTENSION plproxy" "CREATE EXTENSION checkout_proxy" \
		"CREATE SERVER checkout_shards FOREIGN DATA WRAPPER plproxy
		   OPTIONS (modular_mapping '1'$_parts)" \
		"CREATE USER MAPPING FOR PUBLIC SERVER checkout_shards"
}

# proxy_psql ARGS...: psql on the proxy's database (files, variables)
proxy_psql() {
	PGHOST=$SHOP_DIR PGPORT=$SHOP_PORT PGUSER=postgres \
		psql -X -q -v ON_ERROR_STOP=1 -d proxy "$@"
}

# proxy_value SQL: one value from the proxy's database
proxy_value() {
	proxy_psql -At -c "$1"
}

# shard_sum N SQL: the sum over shards 0..N-1 of one number from each
shard_sum() {
	_total=0
	for _k in $(seq 0 $(($1 - 1))); do
		_v=$(shard_value "$_k" "$2") || return 1
		_total=$((_total + _v))
	done
	echo "$_total"
}

# run_sale BUYERS CLIENTS: every buyer of sale_buyers checks out once
# through the proxy, CLIENTS at a time (pgbench), after the last one is
# connected
run_sale() {
	_clients=$2
	[ "$_clients" -gt "$1" ] && _clients=$1
	echo "SELECT sale_buy(nextval('sale_next'));" >"$SHOP_DIR/sale.pgbench"
	PGHOST=$SHOP_DIR PGPORT=$SHOP_PORT PGUSER=postgres \
		pgbench -n -c "$_clients" -j 2 -t $(( ($1 + _clients - 1) / _clients )) \
		-f "$SHOP_DIR/sale.pgbench" proxy >"$SHOP_DIR/pgbench.log" 2>&1 ||
		{ cat "$SHOP_DIR/pgbench.log" >&2; return 1; }
}

# wait_until NODE DB SQL: poll until SQL (one boolean) is true on NODE's
# database DB, at most 60 s (then say what it waited for and fail)
wait_until() {
	_i=0
	until [ "$(PGHOST=$SHOP_DIR PGPORT=$(node_port "$1") PGUSER=postgres \
		psql -X -At -d "$2" -c "$3" 2>/dev/null)" = t ]; do
		_i=$((_i + 1))
		[ "$_i" -gt 1200 ] && { echo "  timed out on $1 waiting for: $3" >&2; return 1; }
		sleep 0.05
	done
}

# hold NODE NAME SQL: a session on NODE's shop database, application_name
# NAME, that runs SQL (a lock) in a transaction and keeps it until released;
# returns once the lock is held
hold() {
	PGHOST=$SHOP_DIR PGPORT=$(node_port "$1") PGUSER=postgres PGAPPNAME=$2 \
		psql -X -q -d shop -c "BEGIN" -c "$3" -c "SELECT pg_sleep(600)" -c "COMMIT" >/dev/null 2>&1 &
	wait_until "$1" shop "SELECT EXISTS (SELECT FROM pg_stat_activity
									  WHERE application_name = '$2' AND query LIKE '%pg_sleep%')"
}

# release NODE NAME: end the session NAME holds there (its transaction
# rolls back and its locks go); nothing when NODE is down
release() {
	PGHOST=$SHOP_DIR PGPORT=$(node_port "$1") PGUSER=postgres psql -X -q -At -d shop \
		-c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$2'" \
		>/dev/null 2>&1
	return 0
}

# waiting_on FUNCTION: SQL that is true while a backend (not a holder) runs
# FUNCTION and waits for a lock, for wait_until
waiting_on() {
	echo "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock'
					 AND query LIKE '%$1%' AND application_name NOT LIKE 'holder%')"
}
