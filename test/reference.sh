#!/bin/sh
# The reference cannot drift (make test): every function, setting, view
# and notification channel of the installed extension, read from the
# catalog, is named in docs/reference.md (in backquotes, as `name` or
# `name(`), and the README stays a front door (at most 25 KB).  Prints
# "check:" lines; a missing name is listed.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

db=checkout_reference
new_db "$db" checkout || exit 1
names=$(psql -X -q -At -d "$db" -c "
	LOAD 'checkout';
	SELECT 'function ' || p.proname FROM pg_depend AS d JOIN pg_proc AS p ON p.oid = d.objid
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
	UNION
	SELECT 'view ' || c.relname FROM pg_depend AS d JOIN pg_class AS c ON c.oid = d.objid
	 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind = 'v'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
	UNION
	SELECT 'setting ' || name FROM pg_settings WHERE name LIKE 'checkout.%'
	UNION
	SELECT DISTINCT 'channel ' || m[1] FROM pg_depend AS d JOIN pg_proc AS p ON p.oid = d.objid,
		   regexp_matches(p.prosrc, 'pg_notify\(''([a-z_]+)''', 'g') AS m
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
	ORDER BY 1")
missing=""
count=0
for kind_name in $(echo "$names" | tr ' ' ':'); do
	name=${kind_name#*:}
	count=$((count + 1))
	grep -qF "\`$name" docs/reference.md || missing="$missing ${kind_name%%:*} $name;"
done
check "docs/reference.md names every function, view, setting and channel ($count; missing:${missing:- none})" \
	[ -z "$missing" -a "$count" -gt 40 ]
size=$(wc -c <README.md)
check "README.md is a front door, at most 25 KB ($size bytes)" [ "$size" -le 25600 ]
sql postgres "DROP DATABASE $db"
exit "$failed"
