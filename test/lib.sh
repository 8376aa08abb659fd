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

# check NAME COMMAND...: a "check:" verdict; counts failures in $failed
failed=0
check() {
	verdict check "$@" || failed=$((failed + 1))
}

# data DATABASE: its rows and sequences as pg_dump --data-only prints them,
# without comments and the \restrict key that changes every run
data() {
	pg_dump --data-only "$1" | grep -Ev '^(--|\\(un)?restrict )'
}

# count_verdicts FILE...: print "PASSED FAILED", the verdict lines in FILEs
count_verdicts() {
	_ok=$(cat "$@" | grep -Ec '^(test| ) .* \.\.\. ok|^ *ok [0-9]|^[A-Za-z_-]+: ok ')
	_bad=$(cat "$@" | grep -Ec '\.\.\. FAILED|^ *not ok [0-9]|^[A-Za-z_-]+: FAILED ')
	echo "$_ok $_bad"
}
