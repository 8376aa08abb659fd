# test/lib.sh: shell functions shared by the scripts behind make test
# (sourced).  They run against the server of the PG* variables.
#
# Verdict lines, one per test, are what make test counts:
#   pg_regress and isolation  "test NAME ... ok" / "... FAILED"
#   pgTAP                     "ok N - ..." / "not ok N - ..."
#   these scripts             "KIND: ok NAME" / "KIND: FAILED NAME"

# sql DATABASE SQL...: run each SQL command in DATABASE, quietly, stopping at
# the first error
sql() {
	_db=$1
	shift
	for _c in "$@"; do
		set -- "$@" -c "$_c"
		shift
	done
	psql -X -q -v ON_ERROR_STOP=1 -d "$_db" "$@"
}

# new_db NAME [EXTENSION...]: a new empty database NAME with these
# extensions created in it
new_db() {
	_name=$1
	shift
	sql postgres "SET client_min_messages = warning" \
		"DROP DATABASE IF EXISTS \"$_name\"" "CREATE DATABASE \"$_name\"" || return 1
	for _ext in "$@"; do
		sql "$_name" "CREATE EXTENSION $_ext" || return 1
	done
}

# verdict KIND NAME COMMAND...: run COMMAND and print its verdict line
# ("KIND: ok NAME" or "KIND: FAILED NAME"); returns COMMAND's status
verdict() {
	_kind=$1
	_what=$2
	shift 2
	if "$@"; then
		echo "$_kind: ok $_what"
	else
		_rc=$?
		echo "$_kind: FAILED $_what"
		return $_rc
	fi
}

# check NAME COMMAND...: a "check:" verdict; counts passes in $passed and
# failures in $failed
passed=0
failed=0
check() {
	if verdict check "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		return 1
	fi
}

# crowd DATABASE BUYERS DIR: every buyer 1..BUYERS calls try_checkout(its
# id) once, 32 sessions at a time, started in the background (the caller
# waits); each session's output in DIR/sN.out
crowd() {
	_i=0
	while [ $_i -lt 32 ]; do
		_k=$((_i + 1))
		while [ $_k -le "$2" ]; do echo "SELECT try_checkout($_k);"; _k=$((_k + 32)); done >"$3/s$_i.sql"
		psql -X -q -At -d "$1" -f "$3/s$_i.sql" >"$3/s$_i.out" 2>&1 &
		_i=$((_i + 1))
	done
}

# data DATABASE: its rows and sequences as pg_dump --data-only prints them,
# without comments and the \restrict key that changes every run
data() {
	pg_dump --data-only "$1" | grep -Ev '^(--|\\(un)?restrict )'
}

# shop_works DATABASE: true when a shop made by test/fixtures/shop_data.sql
# works: integrity clean, customer 10's checkout succeeds, a new product's
# opening stock is recorded, integrity still clean (all four required)
shop_works() {
	[ "$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "
		SELECT count(*) FROM shop_check_integrity();
		SELECT shop_checkout(10) > 0;
		INSERT INTO products (name, price_cents, stock) VALUES ('New', 100, 7);
		SELECT count(*) FROM stock_movements m JOIN products p ON p.id = m.product_id
		 WHERE p.name = 'New' AND m.kind = 'opening' AND m.quantity = 7;
		SELECT count(*) FROM shop_check_integrity();" | tr '\n' ' ')" = "0 t 1 0 " ]
}

# quiet_server_log FILE: FILE without the server log that pg_virtualenv
# prints when its command fails
quiet_server_log() {
	grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC ' "$1"
}

# count_verdicts FILE...: print "PASSED FAILED", the verdict lines in FILEs
count_verdicts() {
	_ok=$(cat "$@" | grep -Ec '^(test| ) .* \.\.\. ok|^ *ok [0-9]|^[A-Za-z_-]+: ok ')
	_bad=$(cat "$@" | grep -Ec '\.\.\. FAILED|^ *not ok [0-9]|^[A-Za-z_-]+: FAILED ')
	echo "$_ok $_bad"
}

# as_postgres COMMAND...: run COMMAND as the postgres user when we are root
# (pgbouncer and pg_autoctl refuse root), keeping the environment; setpriv,
# not runuser, whose PAM session would put the open files limit back to
# 1,024.  $AS_POSTGRES holds the same prefix, for setsid and the like.
AS_POSTGRES=
[ "$(id -u)" -eq 0 ] && AS_POSTGRES="setpriv --reuid=postgres --regid=postgres --init-groups"
as_postgres() {
	$AS_POSTGRES "$@"
}

# start_pgbouncer DATABASE POOL: pgbouncer in transaction pooling mode in
# front of DATABASE on the server of the PG* variables, with POOL server
# connections; sets PGBOUNCER_PORT (127.0.0.1).  stop_pgbouncer stops it.
start_pgbouncer() {
	PGBOUNCER_DIR=$(mktemp -d)
	PGBOUNCER_PORT=$(( ${PGPORT:-5432} + 1000 ))
	cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
$1 = host=${PGHOST:-localhost} port=${PGPORT:-5432} dbname=$1 user=${PGUSER:-postgres} password=${PGPASSWORD:-}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = $2
max_db_connections = $2
max_client_conn = 19000
ignore_startup_parameters = extra_float_digits, options
logfile = $PGBOUNCER_DIR/pgbouncer.log
pidfile = $PGBOUNCER_DIR/pgbouncer.pid
INI
	chmod 755 "$PGBOUNCER_DIR"
	ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	[ -n "$AS_POSTGRES" ] && chown -R postgres "$PGBOUNCER_DIR"
	as_postgres pgbouncer -d "$PGBOUNCER_DIR/pgbouncer.ini" || return 1
	_i=0
	until psql -X -At -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d "$1" -c 'SELECT 1' >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ "$_i" -gt 100 ] && { cat "$PGBOUNCER_DIR/pgbouncer.log" >&2; return 1; }
		sleep 0.1
	done
}

stop_pgbouncer() {
	[ -f "$PGBOUNCER_DIR/pgbouncer.pid" ] && kill "$(cat "$PGBOUNCER_DIR/pgbouncer.pid")"
	_i=0
	while [ -f "$PGBOUNCER_DIR/pgbouncer.pid" ] && [ "$_i" -lt 50 ]; do
		_i=$((_i + 1))
		sleep 0.1
	done
	rm -rf "$PGBOUNCER_DIR"
}
