#!/bin/sh
# Resets (make test): test frameworks empty a database between tests by
# truncating every table or deleting every row.  After each such reset of
# a shop that has orders, vouchers, locations and preorders, the shop must
# work as a fresh install does (test/fixtures/shop_after_reset.sql): the
# default location, a row of locations, comes back.  Also a shop's data
# dumped with pg_dump --data-only and restored into a fresh install.
# Prints "check:" lines.  On 1.2 every reset below breaks the shop (the
# first INSERT INTO products fails on the opening movement's foreign key).
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

db=checkout_reset
tables="SELECT string_agg(c.oid::regclass::text, ', ' ORDER BY random())
		  FROM pg_depend AS d JOIN pg_class AS c ON c.oid = d.objid
		 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
		   AND d.deptype = 'e' AND c.relkind = 'r'"

# a shop with something in every table, made by the fixture itself
used_shop() {
	new_db "$db" checkout && [ "$(psql -X -q -At -d "$db" -f test/fixtures/shop_after_reset.sql 2>&1)" = works ]
}
works_after() {
	_what=$1
	shift
	if ! used_shop; then
		check "$_what: the shop to reset was made" false
		return
	fi
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@" >"$tmp/reset.out" 2>&1
	_rc=$?
	_out=$(psql -X -q -At -d "$db" -f test/fixtures/shop_after_reset.sql 2>&1 | tail -n 3 | tr '\n' ' ')
	check "$_what: the shop works as a fresh install ($_out)" [ "$_rc" -eq 0 -a "$_out" = "works " ]
}

new_db "$db" checkout || exit 1
list=$(psql -X -At -d "$db" -c "$tables")
works_after "TRUNCATE of every table, RESTART IDENTITY CASCADE (DatabaseCleaner)" \
	-c "TRUNCATE TABLE $list RESTART IDENTITY CASCADE"
works_after "TRUNCATE of every table in one statement, no options (Django's flush)" \
	-c "TRUNCATE $list"
# one table at a time, in three random orders, CASCADE reaching the others
for round in 1 2 3; do
	order=$(echo "$list" | tr -d ' ' | tr ',' '\n' | shuf | tr '\n' ' ')
	script=""
	for t in $order; do script="$script TRUNCATE $t RESTART IDENTITY CASCADE;"; done
	works_after "TRUNCATE ... RESTART IDENTITY CASCADE table by table, order $round" -c "$script"
done
# DELETE of every row, table by table, until all are empty (each pass
# deletes from what no other row references any more)
works_after "DELETE of every row of every table" -c "
	DO \$\$
	DECLARE
		t regclass;
		left_over boolean := true;
		passes integer := 0;
	BEGIN
		WHILE left_over AND passes < 20 LOOP
			left_over := false;
			passes := passes + 1;
			FOR t IN SELECT c.oid FROM pg_depend AS d JOIN pg_class AS c ON c.oid = d.objid
					  WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
						AND d.deptype = 'e' AND c.relkind = 'r' ORDER BY random() LOOP
				BEGIN
					EXECUTE format('DELETE FROM %s', t);
				EXCEPTION WHEN foreign_key_violation THEN
					left_over := true;
				END;
			END LOOP;
		END LOOP;
	END
	\$\$"
works_after "DELETE FROM locations once nothing references it (then every other table)" -c "
	TRUNCATE $list CASCADE" -c "DELETE FROM locations"
# the default location is the shop's: recreated, not duplicated
new_db "$db" checkout >/dev/null
n=$(psql -X -q -At -d "$db" -c "TRUNCATE locations CASCADE" -c "TRUNCATE locations CASCADE" \
	-c "SELECT count(*) || ' ' || min(name) FROM locations")
check "the default location after two truncates: one row, 'default' (got $n)" [ "$n" = "1 default" ]

# pg_dump --data-only of a used shop, restored into a fresh install
used_shop && pg_dump --data-only "$db" >"$tmp/data.sql"
new_db checkout_reset_restored checkout
psql -X -q -v ON_ERROR_STOP=1 -d checkout_reset_restored -f "$tmp/data.sql" >"$tmp/restore.out" 2>&1
rc=$?
out=$(psql -X -q -At -d checkout_reset_restored -f test/fixtures/shop_after_reset.sql 2>&1 | tail -n 3 | tr '\n' ' ')
check "pg_dump --data-only restored into a fresh install: it loads and the shop works ($out)" \
	[ "$rc" -eq 0 -a "$out" = "works " ]
[ "$rc" -ne 0 ] && tail -5 "$tmp/restore.out"
exit "$failed"
