#!/bin/sh
# Every documented line runs (make test): each ```sql block of README.md
# and docs/*.md, in order per file, in a throwaway database, checked
# against the results its comments state.  Prints "check:" lines named by
# file and line: one per asserted statement, one per block for its other
# statements (they must succeed), one per "given"; a "skip:" line, with
# its reason, per block marked skip; and a count.  About 2 s.
#
# What a comment asserts, after a statement's closing semicolon:
#   -- 1: the new order's id      the result is exactly these values, row
#   -- 5997, 1199, true: ...      after row, column after column: numbers,
#   -- 'paid'; unpaid ...         'text', true, false, NULL, separated by
#   -- 4798 and 1199              ", " or " and ", up to a ":", ";", space
#   -- ... and 2 again: ...       or the end (a leading "..." and "and" are
#                                 a sentence going on and are skipped)
#   -- total_cents 99800          a SELECT's one row has this column's value
#   -- no rows: ...               the statement returns no rows
# Anything else is prose ("-- product 2" on an INSERT, "-- the queue
# checkout_orders").  Comment lines right after a statement:
#   -- ERROR:  text               the statement fails: psql prints these
#   -- DETAIL:  text              lines (ERROR, WARNING, NOTICE, DETAIL,
#   -- HINT:  text                HINT, CONTEXT), in this order; a statement
#                                 without an "-- ERROR:" line must succeed
#   -- placed | 3 | ...           the result as psql prints it, row by row
#                                 (a first line of column names optional)
# In all of them "..." stands for any text.
#
# A block runs in the file's database (new, shared by the file's blocks,
# so a block goes on from the ones before it); the extension is created
# in a new database unless the block (or its given) creates it.  Markers,
# each an HTML comment on its own line right above the block:
#   <!-- docs-test: skip (needs pg_cron) -->   not run; counted with reason
#   <!-- docs-test: own database -->           run in a new database of its
#                                              own; the next block goes on
#                                              in the file's database
#   <!-- docs-test: given SQL -->              SQL the text assumes, run
#                                              before the block
#   <!-- docs-test: given FILE#anchor -->      the sql blocks of that
#                                              section (their statements
#                                              that show no error), first
#
# README.md and every docs/*.md by default; DOCS_FILES="a.md b.md" names
# the files.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

files=${DOCS_FILES:-README.md docs/*.md}
work=$(mktemp -d)
dbs=
trap 'rm -rf "$work"' EXIT

cat >"$work/docs.pl" <<'PERL'
use strict;
use warnings;

# The blocks of a markdown file: [{line, markers => [...], lines => [[n, text]]}]
sub blocks {
	my ($file) = @_;
	open my $fh, '<', $file or die "$file: $!";
	my (@blocks, @markers, $cur, $indent);
	my $n = 0;
	while (my $l = <$fh>) {
		$n++;
		chomp $l;
		if ($cur) {
			if ($l =~ /^\s*```\s*$/) { push @blocks, $cur; $cur = undef; next; }
			$l =~ s/^ {0,$indent}//;
			push @{$cur->{lines}}, [$n, $l];
			next;
		}
		if ($l =~ /^(\s*)```sql\s*$/) {
			$indent = length $1;
			$cur = {line => $n, markers => [@markers], lines => []};
			@markers = ();
			next;
		}
		if ($l =~ /^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$/) { push @markers, [$n, $1]; next; }
		push @blocks, {line => $markers[0][0], stray => 1} if @markers;
		@markers = ();
	}
	return \@blocks;
}

# The statements of a block: [{first, last, text, comment, after => [...]}]
sub statements {
	my ($block) = @_;
	my (@st, $cur);
	my ($quote, $dollar, $cdepth) = ('', '', 0);
	for my $ln (@{$block->{lines}}) {
		my ($n, $l) = @$ln;
		my ($code, $comment, $ended) = ('', undef, 0);
		my $i = 0;
		while ($i < length $l) {
			my $c = substr $l, $i, 1;
			my $two = substr $l, $i, 2;
			if ($cdepth) {
				if ($two eq '*/') { $cdepth--; $i += 2; next; }
				if ($two eq '/*') { $cdepth++; $i += 2; next; }
			} elsif ($dollar ne '') {
				if (substr($l, $i, length $dollar) eq $dollar) { $i += length $dollar; $dollar = ''; next; }
			} elsif ($quote ne '') {
				$quote = '' if $c eq $quote;
			} elsif ($two eq '--') {
				$comment = substr $l, $i + 2;
				last;
			} elsif ($two eq '/*') {
				$cdepth++; $i += 2; next;
			} elsif ($c eq "'" || $c eq '"') {
				$quote = $c;
			} elsif (substr($l, $i) =~ /^(\$\w*\$)/) {
				$dollar = $1; $i += length $1; $code .= $1; next;
			} elsif ($c eq ';') {
				$ended = 1;
			}
			$code .= $c if !$cdepth;
			$i++;
		}
		if (!$cur && $code =~ /\S/) {
			$cur = {first => $n, text => ''};
		}
		if ($cur) {
			$cur->{text} .= "$l\n";
			if ($ended) {
				$cur->{last} = $n;
				$cur->{line} = $l;
				$cur->{comment} = defined $comment ? $comment : '';
				$cur->{after} = [];
				push @st, $cur;
				$cur = undef;
			}
		} elsif (defined $comment && @st) {
			push @{$st[-1]{after}}, $comment;
		}
	}
	if ($cur) {    # no final semicolon
		@$cur{qw(last line comment after)} = ($block->{lines}[-1][0], $block->{lines}[-1][1], '', []);
		push @st, $cur;
	}
	expectations($_) for @st;
	return \@st;
}

my $VAL = qr/-?\d+(?:\.\d+)?|'(?:[^']|'')*'|true|false|NULL/;

# What a statement's comments assert (see the header of test/docs.sh)
sub expectations {
	my ($s) = @_;
	my $c = $s->{comment};
	$c =~ s/^\s+|\s+$//g;
	$c =~ s/^\.\.\.\s*//;
	$c =~ s/^and\s+//;
	if ($c =~ /^no rows\b/) {
		$s->{norows} = 1;
	} elsif ($c =~ /^((?:$VAL)(?:(?:, | and )(?:$VAL))*)(?=$|[:;,\s])/) {
		my $list = $1;
		$s->{values} = [map { value($_) } $list =~ /($VAL)/g];
	} elsif ($c =~ /^([a-z_][a-z0-9_]*) ($VAL)(?=$|[:;,\s])/) {
		my ($col, $v) = ($1, value($2));
		$s->{column} = [$col, $v] if $s->{text} =~ /^\s*(SELECT|WITH|TABLE|VALUES)\b/i;
	}
	for my $a (@{$s->{after}}) {
		if ($a =~ /^\s*(ERROR|WARNING|NOTICE|DETAIL|HINT|CONTEXT):\s*(.*?)\s*$/) {
			push @{$s->{messages}}, [$1, $2];
		} elsif ($a =~ /\|/) {
			push @{$s->{rows}}, [fields($a)];
		}
	}
	$s->{fails} = grep { $_->[0] eq 'ERROR' } @{$s->{messages} || []};
	$s->{asserts} = $s->{norows} || $s->{values} || $s->{column} || $s->{messages} || $s->{rows};
}

sub value {
	my ($v) = @_;
	return 't' if $v eq 'true';
	return 'f' if $v eq 'false';
	return '' if $v eq 'NULL';
	if ($v =~ /^'(.*)'$/s) { ($v = $1) =~ s/''/'/g; }
	return $v;
}

sub fields {
	my ($row) = @_;
	my @f = split /\|/, $row, -1;
	s/^\s+|\s+$//g for @f;
	return @f;
}

# EXPECTED (with "..." for any text) matches GOT
sub like {
	my ($expected, $got) = @_;
	my $re = join '.*', map { quotemeta } split /\.\.\./, $expected, -1;
	return $got =~ /^$re$/s;
}

# A check's name: the file, the line, the line as written
sub name {
	my ($file, $s) = @_;
	(my $l = $s->{line}) =~ s/\s+/ /g;
	$l =~ s/^ | $//g;
	if ($s->{messages}) {
		$l =~ s/\s*--.*//;
		$l .= " -- $s->{messages}[0][0]:  $s->{messages}[0][1]";
	} elsif ($s->{rows}) {
		$l .= " -- " . join(' | ', @{$s->{rows}[-1]});
	}
	$l = substr($l, 0, 117) . '...' if length $l > 120;
	return "$file:$s->{last} $l";
}

# The section of FILE that ANCHOR names: its blocks' statements that show
# no error, as SQL
sub section_sql {
	my ($file, $anchor) = @_;
	open my $fh, '<', $file or die "$file: $!";
	my ($in, $level, @lines) = (0, 0);
	while (my $l = <$fh>) {
		if ($l =~ /^(#+)\s+(.*?)\s*$/) {
			my ($lv, $slug) = (length $1, lc $2);
			$slug =~ s/[^\w\- ]//g;
			$slug =~ s/ /-/g;
			last if $in && $lv <= $level;
			($in, $level) = (1, $lv) if $slug eq $anchor;
		}
		push @lines, $l if $in;
	}
	die "$file#$anchor: no such section\n" unless @lines;
	my $sql = '';
	my $tmp = "$ENV{work}/section.md";
	open my $out, '>', $tmp or die;
	print $out @lines;
	close $out;
	for my $b (@{blocks($tmp)}) {
		next if $b->{stray} || grep { $_->[1] =~ /^skip\b/ } @{$b->{markers}};
		$sql .= $_->{text} for grep { !$_->{fails} } @{statements($b)};
	}
	return $sql;
}

sub write_file {
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $text;
	close $fh;
}

# parse FILE...: the plan (a line per block) and each block's files
sub parse {
	my $id = 0;
	open my $plan, '>', "$ENV{work}/plan" or die;
	for my $file (@_) {
		for my $b (@{blocks($file)}) {
			$id++;
			if ($b->{stray}) { print $plan "bad\t$id\t$file\t$b->{line}\ta docs-test marker not right above a sql block\n"; next; }
			my ($mode, $given, $skip, $bad) = ('file', '', undef, undef);
			for my $m (@{$b->{markers}}) {
				if ($m->[1] =~ /^skip\s*\((.+)\)$/) { $skip = $1; }
				elsif ($m->[1] eq 'own database') { $mode = 'own'; }
				elsif ($m->[1] =~ /^given\s+(\S+)#(\S+)$/) {
					$given .= eval { section_sql($1, $2) } // do { $bad = "line $m->[0]: $@"; '' };
				}
				elsif ($m->[1] =~ /^given\s+(.+)$/) { $given .= "$1;\n"; }
				else { $bad = "line $m->[0]: unknown docs-test marker \"$m->[1]\""; }
			}
			if ($bad) { chomp $bad; print $plan "bad\t$id\t$file\t$b->{line}\t$bad\n"; next; }
			if (defined $skip) { print $plan "skip\t$id\t$file\t$b->{line}\t$skip\n"; next; }
			my $st = statements($b);
			my ($sql, $checks) = ('', '');
			for my $k (0 .. $#$st) {
				my $s = $st->[$k];
				$sql .= "\\echo '\@\@ $k'\n\\warn '\@\@ $k'\n$s->{text}";
				$checks .= "$k\t" . name($file, $s) . "\n" if $s->{asserts};
			}
			write_file("$ENV{work}/$id.sql", $sql);
			write_file("$ENV{work}/$id.given", $given);
			write_file("$ENV{work}/$id.checks", $checks);
			my $creates = ($given . join '', map { $_->[1] } @{$b->{lines}}) =~ /CREATE\s+EXTENSION\s+(IF\s+NOT\s+EXISTS\s+)?checkout\b/i ? 1 : 0;
			printf $plan "block\t%d\t%s\t%d\t%s\t%d\t%d\t%d\n", $id, $file, $b->{line}, $mode, $creates,
				scalar(@$st), scalar(grep { $_->{asserts} } @$st);
		}
	}
}

# The output of each statement of block ID: ([stdout lines], [message lines]) by index
sub outputs {
	my ($id) = @_;
	my (%out, %err);
	for ([\%out, "$ENV{work}/$id.out"], [\%err, "$ENV{work}/$id.err"]) {
		my ($h, $path) = @$_;
		open my $fh, '<', $path or die "$path: $!";
		my $k = -1;
		while (my $l = <$fh>) {
			chomp $l;
			if ($l =~ /^\@\@ (\d+)$/) { $k = $1; $h->{$k} = []; next; }
			push @{$h->{$k}}, $l;
		}
	}
	return (\%out, \%err);
}

# The messages psql printed: [[tag, text]], continuation lines joined
sub messages {
	my ($lines) = @_;
	my @m;
	for my $l (@{$lines || []}) {
		if ($l =~ /^(?:psql:.*?:\d+: )?(ERROR|WARNING|NOTICE|DETAIL|HINT|CONTEXT|LINE \d+|QUERY):\s*(.*)$/) {
			push @m, [$1, $2];
		} elsif (@m) {
			$m[-1][1] .= "\n$l";
		}
	}
	return \@m;
}

sub show { my ($what, $text) = @_; print "    | $what: $_\n" for split /\n/, $text, -1; }

# compare FILE LINE ID K: statement K of the block at LINE of FILE shows
# what its comments assert; K "block": its other statements succeed
sub compare {
	my ($file, $line, $id, $k) = @_;
	my ($b) = grep { !$_->{stray} && $_->{line} == $line } @{blocks($file)};
	my $st = statements($b);
	my ($out, $err) = outputs($id);
	if ($k eq 'block') {
		my $ok = 1;
		for my $i (0 .. $#$st) {
			next if $st->[$i]{asserts};
			for my $m (grep { $_->[0] eq 'ERROR' } @{messages($err->{$i})}) {
				print "    | $file:$st->[$i]{last}: ERROR:  $m->[1]\n";
				$ok = 0;
			}
		}
		return $ok;
	}
	my $s = $st->[$k];
	my $msgs = messages($err->{$k});
	my @rows = @{$out->{$k} || []};
	my $header = @rows ? [split /\x1f/, shift @rows, -1] : undef;
	my @data = map { [split /\x1f/, $_, -1] } @rows;
	my $ok = 1;
	my $fail = sub { $ok = 0; show(@$_) for @_; };
	# messages: each expected one, in order; no error unless one is expected
	my $at = 0;
	for my $e (@{$s->{messages} || []}) {
		$at++ while $at < @$msgs && !($msgs->[$at][0] eq $e->[0] && like($e->[1], $msgs->[$at][1]));
		if ($at >= @$msgs) {
			$fail->(['expected', "$e->[0]:  $e->[1]"], ['got', join("\n", map { "$_->[0]:  $_->[1]" } @$msgs) || '(no message: it succeeded)']);
			last;
		}
		$at++;
	}
	if (!$s->{fails}) {
		$fail->(['unexpected', "$_->[0]:  $_->[1]"]) for grep { $_->[0] eq 'ERROR' } @$msgs;
	}
	my $got = !$header ? '(no result)' : @data ? join("\n", map { join(', ', @$_) } @data) : '(no rows)';
	if ($s->{norows} && !($header && !@data)) {
		$fail->(['expected', '(no rows)'], ['got', $got]);
	}
	if ($s->{values}) {
		my @flat = map { @$_ } @data;
		my $same = $header && @flat == @{$s->{values}};
		$same &&= like($s->{values}[$_], $flat[$_]) for 0 .. $#flat;
		$fail->(['expected', join(', ', @{$s->{values}})], ['got', $got]) unless $same;
	}
	if ($s->{column}) {
		my ($col, $v) = @{$s->{column}};
		my ($i) = grep { $header->[$_] eq $col } 0 .. $#{$header || []};
		$fail->(['expected', "one row, $col $v"], ['got', $header ? join(', ', @$header) . "\n$got" : $got])
			unless defined $i && @data == 1 && like($v, $data[0][$i]);
	}
	if ($s->{rows}) {
		my @want = @{$s->{rows}};
		shift @want if $header && @want && join('|', @{$want[0]}) eq join('|', @$header);
		my $same = $header && @want == @data;
		for my $r (0 .. $#want) {
			last unless $same;
			$same &&= @{$want[$r]} == @{$data[$r]};
			$same &&= like($want[$r][$_], $data[$r][$_]) for 0 .. $#{$want[$r]};
		}
		$fail->(['expected', join("\n", map { join(' | ', @$_) } @want)], ['got', !$header ? '(no result)' : join("\n", map { join(' | ', @$_) } @data)])
			unless $same;
	}
	return $ok;
}

my $cmd = shift @ARGV;
if ($cmd eq 'parse') { parse(@ARGV); }
elsif ($cmd eq 'compare') { exit(compare(@ARGV) ? 0 : 1); }
PERL

export work
perl "$work/docs.pl" parse $files || exit 1

# run_block ID DB: the block's statements in one psql session, each one's
# output and messages after a "@@ K" line (stdout and stderr apart)
run_block() {
	psql -X -q -A -F "$(printf '\037')" -P footer=off -v ON_ERROR_STOP=0 -d "$2" \
		-f "$work/$1.sql" >"$work/$1.out" 2>"$work/$1.err" </dev/null
}

# run_given ID DB: the SQL the block's text assumes, stopping at an error
run_given() {
	psql -X -q -v ON_ERROR_STOP=1 -d "$2" -f "$work/$1.given" </dev/null >/dev/null
}

# use_db NAME CREATES: a new database NAME, with the extension unless the
# block creates it itself
use_db() {
	dbs="$dbs $1"
	if [ "$2" = 1 ]; then new_db "$1"; else new_db "$1" checkout; fi
}

blocks=0
statements=0
asserted=0
skipped=0
file_db=
last_file=
tab=$(printf '\t')
while IFS=$tab read -r kind id file line arg creates nst nas; do
	base=$(basename "$file" .md | tr 'A-Z.-' 'a-z__')
	case $kind in
	bad)
		check "$file:$line $arg" false
		continue ;;
	skip)
		skipped=$((skipped + 1))
		echo "skip: $file:$line ($arg)"
		continue ;;
	esac
	if [ "$arg" = own ]; then
		db=docs_${base}_$line
		use_db "$db" "$creates" || { check "$file:$line block: a new database" false; continue; }
	else
		if [ "$file" != "$last_file" ]; then
			file_db=docs_$base
			use_db "$file_db" "$creates" || { check "$file:$line block: a new database" false; continue; }
			last_file=$file
		fi
		db=$file_db
	fi
	if [ -s "$work/$id.given" ]; then
		check "$file:$line given: what the text assumes runs" run_given "$id" "$db"
	fi
	run_block "$id" "$db"
	blocks=$((blocks + 1))
	statements=$((statements + nst))
	asserted=$((asserted + nas))
	[ "$nst" -gt "$nas" ] &&
		check "$file:$line block: its statements without an assertion ($((nst - nas))) succeed" \
			perl "$work/docs.pl" compare "$file" "$line" "$id" block
	while IFS=$tab read -r k name; do
		check "$name" perl "$work/docs.pl" compare "$file" "$line" "$id" "$k"
	done <"$work/$id.checks"
done <"$work/plan"

echo "docs: $blocks blocks run ($statements statements, $asserted asserted), $skipped skipped (why: the skip lines)"
for db in $dbs; do
	sql postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done
exit "$failed"
