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
