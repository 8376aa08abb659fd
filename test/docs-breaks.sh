#!/bin/sh
# The docs suite can fail (make test): README.md broken four ways, one at
# a time (an asserted result, a statement's SQL, an error text shown, a
# statement with no assertion), each copy run through test/docs.sh.  Each
# must make test/docs.sh exit non-zero with a FAILED check naming the
# line broken (or, for a statement with no assertion, its block); the copy
# as written must pass.  About 5 s.  KEEP=DIR keeps the copies and the
# outputs in DIR.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
work=${KEEP:-$(mktemp -d)}
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# line_of TEXT: the README's first line holding TEXT, exactly
line_of() {
	grep -n -F -- "$1" README.md | head -1 | cut -d: -f1
}

# docs_run NAME: test/docs.sh on $work/NAME/README.md, its output kept
docs_run() {
	DOCS_FILES="$work/$1/README.md" sh test/docs.sh >"$work/$1.out" 2>&1
}

# breaks NAME WHERE: the copy NAME fails, and a FAILED check names
# README.md:WHERE (a line number, or one and the word "block")
breaks() {
	if docs_run "$1"; then
		echo "  test/docs.sh passed README.md with line $2 broken ($1)"
		return 1
	fi
	grep -q "FAILED .*README.md:$2[ :]" "$work/$1.out" || {
		echo "  no FAILED check names README.md:$2 ($1):"
		grep FAILED "$work/$1.out" | sed 's/^/    /'
		return 1
	}
}

# mutate NAME FROM TO: a copy of README.md named NAME with the first FROM
# (a fixed string) replaced by TO; prints the line changed
mutate() {
	_line=$(line_of "$2")
	[ -n "$_line" ] || { echo "README.md has no line with: $2" >&2; return 1; }
	mkdir -p "$work/$1"
	FROM=$2 TO=$3 LINE=$_line perl -pe \
		'if ($. == $ENV{LINE}) { my $i = index($_, $ENV{FROM}); substr($_, $i, length $ENV{FROM}) = $ENV{TO}; }' \
		README.md >"$work/$1/README.md"
	echo "$_line"
}

mkdir -p "$work/asis" && cp README.md "$work/asis/README.md"
check "docs: README.md as written passes" docs_run asis

line=$(mutate result "SELECT shop_checkout(1);          -- 1:" "SELECT shop_checkout(1);          -- 2:") &&
	check "docs: a wrong result stated fails (README.md:$line, -- 1 made -- 2)" breaks result "$line"
line=$(mutate statement "SELECT stock FROM product_stock;" "SELECT stock FROM product_stocks;") &&
	check "docs: a broken statement fails (README.md:$line, a table misnamed)" breaks statement "$line"
line=$(mutate error "-- ERROR:  Insufficient stock for Flash Sale Smartphone (available: 1" \
	"-- ERROR:  Insufficient stock for Flash Sale Smartphone (available: 2") &&
	check "docs: a wrong error text fails (README.md:$line)" breaks error "$(($line - 1))"
line=$(mutate plain "INSERT INTO customers (name) VALUES ('Ada');" "INSERT INTO customer (name) VALUES ('Ada');") &&
	check "docs: a broken statement with no assertion fails (README.md:$line, its block's check)" \
		breaks plain "$(head -n "$line" README.md | grep -n '^```sql' | tail -1 | cut -d: -f1) block"

echo "docs-breaks: $passed passed, $failed failed"
exit "$failed"
