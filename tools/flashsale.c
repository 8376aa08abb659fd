/*-------------------------------------------------------------------------
 *
 * flashsale.c
 *		A flash sale against the checkout extension: many buyers hit
 *		shop_checkout() at the same instant, then the invariants are checked.
 *
 * It creates its own products, customers and carts in the extension's
 * tables (it never touches rows it did not create), opens one connection per
 * concurrent buyer, releases every buyer at once through a barrier, and
 * prints the result: orders, failures grouped by SQLSTATE, throughput and
 * latency.  Then it checks, on the rows it created:
 *
 *	- per product, initial stock - final stock = quantity ordered;
 *	- every order has lines, and its total equals its lines;
 *	- every successful buyer has exactly the order it was told of and an
 *	  empty cart; every failed buyer has no order and its cart intact;
 *	- no false "sold out": every buyer rejected with SH001 has a cart line
 *	  that the final stock on sale cannot serve (stock only falls meanwhile);
 *	- with --voucher, no more orders carry the voucher than its limit, none
 *	  fewer if a buyer was told SH010, and each has its discount.
 *
 * Threads: one per connection.  Each takes the next buyer from a shared
 * atomic counter and records the result in that buyer's slot; no other
 * state is shared.  The main thread only draws the progress line.
 *
 * Options follow PostgreSQL's client programs: libpq's connection options
 * (-h -p -U -d, or a connection string as -d or the first argument) and
 * pgbench's names where they mean the same (-c/--client, -q/--quiet), so
 * the usual PG* environment variables work too.  Allocation goes through
 * libpgcommon's pg_malloc family, which exits on out-of-memory.
 *
 * Exit status, as pgbench's: 0 all is well; 1 bad options or setup (the
 * server cannot be reached, the extension is not installed, the sale cannot
 * be set up); 2 errors during the run (an invariant or an --expect-*
 * failed, or a buyer's connection broke).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common/logging.h"
#include "getopt_long.h"
#include "libpq-fe.h"
#include "pqexpbuffer.h"

/* Exit status, as pgbench's */
#define EXIT_SETUP		1		/* bad options, or the sale could not start */
#define EXIT_RUN		2		/* errors during the run */

/* What the command line asks for */
typedef struct Options
{
	const char *dbname;			/* a database name or a connection string */
	const char *host;
	const char *port;
	const char *username;
	int			buyers;
	int			stock;
	int			products;
	int			lines;
	int			quantity;
	long long	price_cents;
	int			clients;		/* 0: one per buyer, up to the server's limit */
	const char *name;
	bool		quiet;
	long long	expect_orders;	/* -1: not checked */
	long long	expect_rejected;
	long long	expect_stock;
	int			slots;			/* stock slots per product; 0 = none */
	bool		keys;			/* check out with idempotency keys */
	int			retry_seconds;	/* retry a lost connection this long (keys) */
	bool		drop_first;		/* drop the first call's connection (keys) */
	int			limit;			/* purchase limit per customer; 0 = none */
	int			tabs;			/* checkouts of each buyer at once */
	int			voucher_limit;	/* every buyer redeems one code of a 20%
								 * voucher limited to this; 0 = none */
	int			locations;		/* locations the stock is spread over (1.2); 0
								 * or 1: the default only */
	int			preorder_cap;	/* each product sold past its stock to buyers
								 * who accept, up to this (1.2); 0: none */
	bool		prepared;		/* named prepared statements (-M prepared) */
} Options;

/*
 * One checkout of a buyer (a buyer has --tabs of them, one per browser tab):
 * its customer id, and what its checkout returned in the end
 */
typedef struct Buyer
{
	long long	customer_id;
	int			index;			/* the buyer's position (cart_product) */
	int			tab;
	int			calls;			/* calls made, retries included */
	bool		refilled;		/* with --tabs: found the cart emptied by
								 * another tab, and put it back */
	bool		done;
	bool		ordered;
	long long	order_id;
	char		sqlstate[6];
	char	   *message;		/* first line of the error, pg_malloc'd */
	double		latency_ms;
} Buyer;

/* State shared by the buyer threads */
typedef struct Sale
{
	const Options *opt;
	const char *checkout_sql;
	const char *refill_sql;		/* with --tabs: put the buyer's cart back */
	const char *voucher_code;	/* with --voucher: the code every buyer types */
	const long long *product_ids;
	Buyer	   *buyers;
	int			nbuyers;
	atomic_int	next_buyer;
	atomic_int	finished;
	pthread_barrier_t start;
} Sale;

/* One buyer thread: its connection */
typedef struct Worker
{
	Sale	   *sale;
	PGconn	   *conn;
	pthread_t	thread;
} Worker;

static const char *progname;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"%s runs a flash sale against the checkout extension: it creates products,\n"
			"buyers and their carts, releases every buyer at the same instant (each calls\n"
			"SELECT shop_checkout($1)), prints the result, then checks the invariants.\n"
			"\n"
			"Usage:\n"
			"  %s [OPTION]... [DBNAME]\n"
			"\n"
			"Sale options:\n"
			"      --buyers=NUM         buyers, each with a cart (default: 33)\n"
			"      --stock=NUM          stock of each product (default: 20)\n"
			"      --products=NUM       products on sale (default: 1)\n"
			"      --lines=NUM          cart lines per buyer, over that many different\n"
			"                           products (default: 1; at most --products)\n"
			"      --quantity=NUM       quantity of each cart line (default: 1)\n"
			"      --price=CENTS        price of each product in cents (default: 49900)\n"
			"      --name=TEXT          name of the first product\n"
			"                           (default: \"Flash Sale Smartphone\")\n"
			"      --slots=NUM          split each product's stock into NUM stock slots\n"
			"                           (2 to 64) with shop_split_stock() (default: 0, none)\n"
			"      --keys               check out with idempotency keys, one per buyer's tab:\n"
			"                           SELECT shop_checkout($1, $2)\n"
			"      --retry=SECONDS      when a call loses its connection, reconnect and call\n"
			"                           again with its key for up to SECONDS (implies --keys)\n"
			"      --drop-first         drop the connection of each buyer's first call right\n"
			"                           after sending it, then retry with its key (implies\n"
			"                           --retry=30 unless given)\n"
			"      --limit=NUM          a purchase limit of NUM per customer on each product\n"
			"      --tabs=NUM           each buyer checks out from NUM tabs at once, each tab\n"
			"                           putting the buyer's cart back first (default: 1)\n"
			"      --voucher=NUM        every buyer checks out with the code of a voucher of\n"
			"                           20%% off limited to NUM uses:\n"
			"                           SELECT shop_checkout($1, $2, $3)\n"
			"      --preorder=NUM       each product may be preordered past its stock, up to\n"
			"                           NUM open units (shop_set_preorder), and every buyer\n"
			"                           accepts a preorder (cart_items.accept_preorder)\n"
			"      --locations=NUM      spread each product's stock over NUM locations (2 to\n"
			"                           8), skewed: each new one, less preferred, takes half\n"
			"                           of what the default has left (the last, three\n"
			"                           quarters), with shop_move_stock()\n"
			"  -c, --client=NUM         number of concurrent database clients (default: one\n"
			"                           per buyer, up to what the server allows); each\n"
			"                           checks out buyers in turn\n"
			"  -M, --protocol=prepared|extended\n"
			"                           query protocol, as pgbench's: named prepared\n"
			"                           statements (default), or unnamed ones, as a pooler\n"
			"                           in transaction mode needs\n"
			"  -q, --quiet              print only failed invariants and expectations\n"
			"      --expect-orders=NUM  fail unless exactly NUM orders succeed\n"
			"      --expect-rejected=NUM\n"
			"                           fail unless exactly NUM checkouts fail with SH001\n"
			"      --expect-stock=NUM   fail unless the final stock of all products is NUM\n"
			"\n"
			"Common options:\n"
			"  -d, --dbname=DBNAME      database name or connection string to connect to\n"
			"  -h, --host=HOSTNAME      database server host or socket directory\n"
			"  -p, --port=PORT          database server port number\n"
			"  -U, --username=USERNAME  connect as specified database user\n"
			"  -V, --version            output version information, then exit\n"
			"  -?, --help               show this help, then exit\n"
			"\n"
			"The PG* environment variables (PGHOST, PGPORT, PGDATABASE, ...) apply as in\n"
			"every PostgreSQL client.  The sale creates its own rows in the extension's\n"
			"tables and never touches others.  It checks: per product, stock moved =\n"
			"quantity ordered; every order has its lines and its total; every buyer has\n"
			"exactly the order it was told of, and a failed buyer its cart intact; no\n"
			"buyer told SH001 while the stock left could serve its cart; with --tabs, every\n"
			"buyer has exactly the orders its tabs were told of (carts are not checked);\n"
			"with --limit, nobody bought past the limit; with --voucher, no more orders\n"
			"carry the voucher than its limit, none fewer if a buyer was told SH010, and\n"
			"each has its discount; with --locations, the books of every location and\n"
			"every order's allocations are right (shop_check_integrity()); with\n"
			"--preorder, no product has more units preordered than its cap, and the\n"
			"books are right.\n"
			"\n"
			"Exit status: 0 success; 1 bad options or setup (cannot connect, extension not\n"
			"installed); 2 errors during the run (an invariant or an expectation failed).\n",
			progname, progname);
}

/* Parse a whole number in [min, max] for option name, or exit 2 */
static long long
parse_number(const char *name, const char *arg, long long min, long long max)
{
	char	   *end;
	long long	value;

	errno = 0;
	value = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || value < min || value > max)
		pg_fatal("--%s must be a whole number from %lld to %lld, not \"%s\"",
				 name, min, max, arg);
	return value;
}

/* The long options: those of the sale, of the run, and libpq's */
enum
{
	OPT_BUYERS = 256, OPT_STOCK, OPT_PRODUCTS, OPT_LINES, OPT_QUANTITY,
	OPT_PRICE, OPT_NAME, OPT_SLOTS, OPT_EXPECT_ORDERS, OPT_EXPECT_REJECTED,
	OPT_EXPECT_STOCK, OPT_KEYS, OPT_RETRY, OPT_DROP_FIRST, OPT_LIMIT, OPT_TABS,
	OPT_VOUCHER, OPT_LOCATIONS, OPT_PREORDER
};

static const struct option long_options[] = {
	{"buyers", required_argument, NULL, OPT_BUYERS},
	{"stock", required_argument, NULL, OPT_STOCK},
	{"products", required_argument, NULL, OPT_PRODUCTS},
	{"lines", required_argument, NULL, OPT_LINES},
	{"quantity", required_argument, NULL, OPT_QUANTITY},
	{"price", required_argument, NULL, OPT_PRICE},
	{"name", required_argument, NULL, OPT_NAME},
	{"slots", required_argument, NULL, OPT_SLOTS},
	{"keys", no_argument, NULL, OPT_KEYS},
	{"retry", required_argument, NULL, OPT_RETRY},
	{"drop-first", no_argument, NULL, OPT_DROP_FIRST},
	{"limit", required_argument, NULL, OPT_LIMIT},
	{"tabs", required_argument, NULL, OPT_TABS},
	{"voucher", required_argument, NULL, OPT_VOUCHER},
	{"locations", required_argument, NULL, OPT_LOCATIONS},
	{"preorder", required_argument, NULL, OPT_PREORDER},
	{"client", required_argument, NULL, 'c'},
	{"quiet", no_argument, NULL, 'q'},
	{"protocol", required_argument, NULL, 'M'},
	{"expect-orders", required_argument, NULL, OPT_EXPECT_ORDERS},
	{"expect-rejected", required_argument, NULL, OPT_EXPECT_REJECTED},
	{"expect-stock", required_argument, NULL, OPT_EXPECT_STOCK},
	{"dbname", required_argument, NULL, 'd'},
	{"host", required_argument, NULL, 'h'},
	{"port", required_argument, NULL, 'p'},
	{"username", required_argument, NULL, 'U'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

/* An option that shapes the sale (products, buyers, carts); false if not one */
static bool
parse_sale_option(int c, const char *arg, Options *opt)
{
	switch (c)
	{
		case OPT_BUYERS:
			opt->buyers = (int) parse_number("buyers", arg, 1, 1000000);
			return true;
		case OPT_STOCK:
			opt->stock = (int) parse_number("stock", arg, 0, INT_MAX);
			return true;
		case OPT_PRODUCTS:
			opt->products = (int) parse_number("products", arg, 1, 100000);
			return true;
		case OPT_LINES:
			opt->lines = (int) parse_number("lines", arg, 1, 1000);
			return true;
		case OPT_QUANTITY:
			opt->quantity = (int) parse_number("quantity", arg, 1, INT_MAX);
			return true;
		case OPT_PRICE:
			opt->price_cents = parse_number("price", arg, 0, 1000000000000LL);
			return true;
		case OPT_NAME:
			opt->name = arg;
			return true;
		case OPT_LIMIT:
			opt->limit = (int) parse_number("limit", arg, 1, INT_MAX);
			return true;
		case OPT_TABS:
			opt->tabs = (int) parse_number("tabs", arg, 1, 100);
			return true;
		case OPT_VOUCHER:
			opt->voucher_limit = (int) parse_number("voucher", arg, 1, INT_MAX);
			return true;
		case OPT_LOCATIONS:
			opt->locations = (int) parse_number("locations", arg, 0, 8);
			return true;
		case OPT_PREORDER:
			opt->preorder_cap = (int) parse_number("preorder", arg, 1, INT_MAX);
			return true;
		case OPT_SLOTS:
			opt->slots = (int) parse_number("slots", arg, 0, 64);
			if (opt->slots == 1)
				pg_fatal("--slots must be 0 (none) or 2 to 64, not 1");
			return true;
	}
	return false;
}

/*
 * An option of how the sale runs (connections, keys and retries) or what
 * it must end with; false if not one
 */
static bool
parse_run_option(int c, const char *arg, Options *opt)
{
	switch (c)
	{
		case 'c':
			opt->clients = (int) parse_number("client", arg, 1, 10000);
			return true;
		case 'q':
			opt->quiet = true;
			return true;
		case 'M':
			if (strcmp(arg, "prepared") == 0)
				opt->prepared = true;
			else if (strcmp(arg, "extended") == 0)
				opt->prepared = false;
			else
				pg_fatal("--protocol must be prepared or extended, not \"%s\"", arg);
			return true;
		case OPT_KEYS:
			opt->keys = true;
			return true;
		case OPT_RETRY:
			opt->retry_seconds = (int) parse_number("retry", arg, 0, 3600);
			opt->keys = true;
			return true;
		case OPT_DROP_FIRST:
			opt->drop_first = true;
			opt->keys = true;
			return true;
		case OPT_EXPECT_ORDERS:
			opt->expect_orders = parse_number("expect-orders", arg, 0, LLONG_MAX);
			return true;
		case OPT_EXPECT_REJECTED:
			opt->expect_rejected = parse_number("expect-rejected", arg, 0, LLONG_MAX);
			return true;
		case OPT_EXPECT_STOCK:
			opt->expect_stock = parse_number("expect-stock", arg, 0, LLONG_MAX);
			return true;
	}
	return false;
}

/* The options that combine: the database argument, --lines, --drop-first */
static void
check_options(int argc, char **argv, Options *opt)
{
	/* The database, as pgbench's first argument */
	if (optind < argc && opt->dbname == NULL)
		opt->dbname = argv[optind++];
	if (optind < argc)
		pg_fatal("unexpected argument \"%s\"; try \"%s --help\"",
				 argv[optind], progname);
	if (opt->drop_first && opt->retry_seconds == 0)
		opt->retry_seconds = 30;
	if (opt->lines > opt->products)
		pg_fatal("--lines (%d) must not exceed --products (%d): a cart holds each product once",
				 opt->lines, opt->products);
}

static void
parse_options(int argc, char **argv, Options *opt)
{
	int			c;

	*opt = (Options)
	{
		.buyers = 33,.stock = 20,.products = 1,.lines = 1,.quantity = 1,
			.price_cents = 49900,.clients = 0,.name = "Flash Sale Smartphone",
			.expect_orders = -1,.expect_rejected = -1,.expect_stock = -1,
			.tabs = 1,.prepared = true
	};

	/* -? and --help, as every PostgreSQL client (getopt uses '?') */
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0))
	{
		usage(stdout);
		exit(0);
	}

	while ((c = getopt_long(argc, argv, "c:d:h:M:p:qU:V", long_options, NULL)) != -1)
	{
		if (parse_sale_option(c, optarg, opt) || parse_run_option(c, optarg, opt))
			continue;
		switch (c)
		{
			case 'd':
				opt->dbname = optarg;
				break;
			case 'h':
				opt->host = optarg;
				break;
			case 'p':
				opt->port = optarg;
				break;
			case 'U':
				opt->username = optarg;
				break;
			case 'V':
				puts("flashsale (checkout) " PG_VERSION);
				exit(0);
			default:
				pg_log_error_hint("Try \"%s --help\" for more information.", progname);
				exit(EXIT_SETUP);
		}
	}
	check_options(argc, argv, opt);
}

/*
 * Connect with libpq's options (the database may be a connection string);
 * the caller checks PQstatus
 */
static PGconn *
connect_with(const Options *opt)
{
	const char *const keys[] = {"host", "port", "user", "dbname",
	"fallback_application_name", NULL};
	const char *const values[] = {opt->host, opt->port, opt->username,
	opt->dbname, progname, NULL};

	return PQconnectdbParams(keys, values, 1);
}

/* Connect, or exit with status */
static PGconn *
connect_or_die(const Options *opt, int status)
{
	PGconn	   *conn = connect_with(opt);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		pg_log_error("cannot connect to the server: %s", PQerrorMessage(conn));
		exit(status);
	}
	return conn;
}

/* Connect, or return NULL */
static PGconn *
connect_or_null(const Options *opt)
{
	PGconn	   *conn = connect_with(opt);

	if (PQstatus(conn) == CONNECTION_OK)
		return conn;
	PQfinish(conn);
	return NULL;
}



/*
 * Run a statement with text parameters; exit 1 on failure (only setting up
 * and checking run statements this way).  The caller
 * PQclear()s the result.
 */
static PGresult *
run(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		pg_fatal("query failed: %s\nquery: %s", PQerrorMessage(conn), sql);
	return res;
}

/* "{a,b,c}" from n numbers, pg_malloc'd */
static char *
array_literal(const long long *values, int n)
{
	PQExpBufferData buf;

	initPQExpBuffer(&buf);
	appendPQExpBufferChar(&buf, '{');
	for (int i = 0; i < n; i++)
		appendPQExpBuffer(&buf, i ? ",%lld" : "%lld", values[i]);
	appendPQExpBufferChar(&buf, '}');
	if (PQExpBufferDataBroken(buf))
		pg_fatal("out of memory");
	return buf.data;
}

/* Product index of line j of buyer i's cart: K distinct products, spread */
static int
cart_product(const Options *opt, int buyer, int line)
{
	return (buyer + line) % opt->products;
}

/*
 * Find the extension's schema and return it quoted; exit 1 when the
 * extension is not installed.
 */
static char *
extension_schema(PGconn *conn)
{
	PGresult   *res = run(conn,
						  "SELECT n.nspname FROM pg_catalog.pg_extension e"
						  "  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
						  " WHERE e.extname = 'checkout'", 0, NULL);
	char	   *qschema;

	if (PQntuples(res) != 1)
		pg_fatal("the checkout extension is not installed in database \"%s\"; run CREATE EXTENSION checkout",
				 PQdb(conn));
	qschema = PQescapeIdentifier(conn, PQgetvalue(res, 0, 0),
								 strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	return qschema;
}

/* SELECT function(product, value) of the extension for each of n products */
static void
for_each_product(PGconn *conn, const char *qschema, const char *function,
				 const long long *product_ids, int n, int value)
{
	char		number[16];
	const char *params[2] = {array_literal(product_ids, n), number};
	char	   *sql = psprintf("SELECT %1$s.%2$s(p.id, $2::integer)"
							   "  FROM pg_catalog.unnest($1::bigint[]) AS p(id)",
							   qschema, function);

	snprintf(number, sizeof(number), "%d", value);
	PQclear(run(conn, sql, 2, params));
	pg_free(sql);
	pg_free((char *) params[0]);
}

/* Run sql ("%1$s" the schema; $1 the products, $2 value) once for all of them */
static void
for_each_product_sql(PGconn *conn, const char *qschema, const char *sqlfmt,
					 const long long *product_ids, int n, int value)
{
	char		number[16];
	const char *params[2];
	char	   *sql = psprintf(sqlfmt, qschema);

	snprintf(number, sizeof(number), "%d", value);
	params[0] = array_literal(product_ids, n);
	params[1] = number;
	PQclear(run(conn, sql, 2, params));
	pg_free(sql);
	pg_free((char *) params[0]);
}

/*
 * --locations: create the sale's other locations (priority 1, 2, ...: the
 * default, 0, is preferred) and move to each, of every product, half of
 * what the default has left (to the last, three quarters)
 */
static void
spread_over_locations(PGconn *conn, const char *qschema, const Options *opt,
					  const long long *product_ids)
{
	char	   *ids = array_literal(product_ids, opt->products);
	char		location[16],
				share[16];
	const char *params[3];
	int			left = opt->stock;

	for (int k = 2; k <= opt->locations; k++)
	{
		char	   *sql = psprintf("SELECT %1$s.shop_create_location("
								   "'flashsale ' || (($1::bigint[])[1]) || ' location ' || $2, $2::integer - 1)",
								   qschema);
		char	   *move;
		PGresult   *res;
		int			moved = k == opt->locations ? left * 3 / 4 : left / 2;

		params[0] = ids;
		snprintf(location, sizeof(location), "%d", k);
		params[1] = location;
		res = run(conn, sql, 2, params);
		snprintf(location, sizeof(location), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		pg_free(sql);
		if (moved == 0)
			continue;
		snprintf(share, sizeof(share), "%d", moved);
		params[1] = location;
		params[2] = share;
		move = psprintf("SELECT %1$s.shop_move_stock(p, 1, $2::bigint, $3::integer,"
						"                            'flashsale: stock spread')"
						"  FROM pg_catalog.unnest($1::bigint[]) AS p", qschema);
		PQclear(run(conn, move, 3, params));
		pg_free(move);
		left -= moved;
	}
	pg_free(ids);
}

/* Create the sale's products, buyers and carts; fill product_ids, buyers */
static void
set_up_sale(PGconn *conn, const char *qschema, const Options *opt,
			long long *product_ids, Buyer *buyers)
{
	char		products[16],
				stock[16],
				price[24],
				nbuyers[16];
	const char *params[4];
	long long  *cart_customer,
			   *cart_product_id,
			   *cart_quantity;
	int			ncart = opt->buyers * opt->lines;
	PGresult   *res;
	char	   *sql;

	snprintf(products, sizeof(products), "%d", opt->products);
	snprintf(stock, sizeof(stock), "%d", opt->stock);
	snprintf(price, sizeof(price), "%lld", opt->price_cents);
	snprintf(nbuyers, sizeof(nbuyers), "%d", opt->buyers);

	PQclear(run(conn, "BEGIN", 0, NULL));

	params[0] = opt->name;
	params[1] = price;
	params[2] = stock;
	params[3] = products;
	sql = psprintf("INSERT INTO %1$s.products (name, price_cents, stock)"
				   " SELECT CASE WHEN g = 1 THEN $1 ELSE $1 || ' #' || g END,"
				   "        $2::bigint, $3::integer"
				   "   FROM pg_catalog.generate_series(1, $4::integer) AS g"
				   " ORDER BY g RETURNING id", qschema);
	res = run(conn, sql, 4, params);
	pg_free(sql);
	for (int i = 0; i < opt->products; i++)
		product_ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);

	if (opt->slots > 0)
		for_each_product(conn, qschema, "shop_split_stock", product_ids,
						 opt->products, opt->slots);
	if (opt->locations > 1)
		spread_over_locations(conn, qschema, opt, product_ids);
	if (opt->preorder_cap > 0)
		for_each_product_sql(conn, qschema,
							 "SELECT %1$s.shop_set_preorder(p, $2::integer, NULL)"
							 "  FROM pg_catalog.unnest($1::bigint[]) AS p",
							 product_ids, opt->products, opt->preorder_cap);

	params[0] = nbuyers;
	sql = psprintf("INSERT INTO %1$s.customers (name)"
				   " SELECT 'flashsale buyer ' || g"
				   "   FROM pg_catalog.generate_series(1, $1::integer) AS g"
				   " ORDER BY g RETURNING id", qschema);
	res = run(conn, sql, 1, params);
	pg_free(sql);
	for (int i = 0; i < opt->buyers; i++)
		for (int t = 0; t < opt->tabs; t++)
		{
			buyers[i * opt->tabs + t].customer_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			buyers[i * opt->tabs + t].index = i;
			buyers[i * opt->tabs + t].tab = t;
		}
	PQclear(res);

	if (opt->limit > 0)
		for_each_product(conn, qschema, "shop_set_purchase_limit", product_ids,
						 opt->products, opt->limit);

	cart_customer = pg_malloc(sizeof(long long) * ncart);
	cart_product_id = pg_malloc(sizeof(long long) * ncart);
	cart_quantity = pg_malloc(sizeof(long long) * ncart);
	for (int i = 0; i < opt->buyers; i++)
		for (int j = 0; j < opt->lines; j++)
		{
			int			k = i * opt->lines + j;

			cart_customer[k] = buyers[i * opt->tabs].customer_id;
			cart_product_id[k] = product_ids[cart_product(opt, i, j)];
			cart_quantity[k] = opt->quantity;
		}
	params[0] = array_literal(cart_customer, ncart);
	params[1] = array_literal(cart_product_id, ncart);
	params[2] = array_literal(cart_quantity, ncart);
	if (opt->preorder_cap > 0)
		sql = psprintf("INSERT INTO %1$s.cart_items (customer_id, product_id, quantity, accept_preorder)"
					   " SELECT c, p, q, true FROM unnest($1::bigint[], $2::bigint[], $3::integer[])"
					   "        AS l(c, p, q)", qschema);
	else
		sql = psprintf("INSERT INTO %1$s.cart_items (customer_id, product_id, quantity)"
					   " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[])", qschema);
	PQclear(run(conn, sql, 3, params));
	pg_free(sql);
	for (int i = 0; i < 3; i++)
		pg_free((char *) params[i]);
	pg_free(cart_customer);
	pg_free(cart_product_id);
	pg_free(cart_quantity);

	PQclear(run(conn, "COMMIT", 0, NULL));
}

/*
 * How many connections the server will take from us; no limit behind a
 * pooler (the port the client reached is not the server's own)
 */
static int
server_connection_room(PGconn *conn)
{
	PGresult   *res = run(conn,
						  "SELECT pg_catalog.current_setting('max_connections')::int"
						  "     - pg_catalog.current_setting('superuser_reserved_connections')::int"
						  "     - (SELECT count(*) FROM pg_catalog.pg_stat_activity)::int,"
						  "       pg_catalog.inet_server_port()",
						  0, NULL);
	int			room = atoi(PQgetvalue(res, 0, 0));

	if (!PQgetisnull(res, 0, 1) && atoi(PQgetvalue(res, 0, 1)) != atoi(PQport(conn)))
		room = INT_MAX;
	PQclear(res);
	return room;
}

/* Record the outcome of one checkout in its buyer's slot */
static void
record_result(Buyer *b, PGresult *res, PGconn *conn)
{
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		b->ordered = true;
		b->order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	}
	else
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", state ? state : "?????");
		b->message = pg_strdup(msg ? msg : PQerrorMessage(conn));
		b->message[strcspn(b->message, "\n")] = '\0';
	}
}

/* Whether a call failed because its connection was lost */
static bool
connection_lost(PGresult *res, PGconn *conn)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return PQstatus(conn) == CONNECTION_BAD || state == NULL ||
		strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0;
}

/*
 * Connect a buyer thread and prepare its statements; with deadline_ms > 0,
 * keep trying until then (the server may be restarting), else exit 1
 */
static PGconn *
connect_worker(const Sale *sale, double deadline_ms)
{
	for (;;)
	{
		PGconn	   *conn = deadline_ms > 0 ? connect_or_null(sale->opt)
		: connect_or_die(sale->opt, EXIT_SETUP);

		if (conn != NULL && !sale->opt->prepared)
			return conn;
		if (conn != NULL)
		{
			PGresult   *res = PQprepare(conn, "checkout", sale->checkout_sql,
										sale->opt->keys ? 2 : 1, NULL);
			bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

			PQclear(res);
			if (ok && sale->refill_sql != NULL)
			{
				res = PQprepare(conn, "refill", sale->refill_sql, 3, NULL);
				ok = PQresultStatus(res) == PGRES_COMMAND_OK;
				PQclear(res);
			}
			if (ok)
				return conn;
			if (deadline_ms <= 0)
				pg_fatal("cannot prepare the checkout: %s", PQerrorMessage(conn));
			PQfinish(conn);
		}
		if (now_ms() > deadline_ms)
			return NULL;
		usleep(100000);
	}
}

/*
 * Run one of the sale's statements on a worker's connection: the named
 * prepared statement, or with -M extended the SQL itself (unnamed)
 */
static PGresult *
run_statement(Worker *w, const char *name, const char *sql, int nparams,
			  const char *const *params)
{
	if (w->sale->opt->prepared)
		return PQexecPrepared(w->conn, name, nparams, params, NULL, NULL, 0);
	return PQexecParams(w->conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* With --tabs: put the buyer's cart lines back (those not there) */
static void
refill_cart(Worker *w, const Buyer *b)
{
	const Options *opt = w->sale->opt;
	long long  *ids = pg_malloc(sizeof(long long) * opt->lines);
	char		id[24],
				quantity[16];
	const char *params[3] = {id, NULL, quantity};

	for (int j = 0; j < opt->lines; j++)
		ids[j] = w->sale->product_ids[cart_product(opt, b->index, j)];
	snprintf(id, sizeof(id), "%lld", b->customer_id);
	snprintf(quantity, sizeof(quantity), "%d", opt->quantity);
	params[1] = array_literal(ids, opt->lines);
	PQclear(run_statement(w, "refill", w->sale->refill_sql, 3, params));
	pg_free((char *) params[1]);
	pg_free(ids);
}

/*
 * --voucher: a voucher of 20% off limited to that many uses, and its code
 * (unique: "FLASHSALE-" and the voucher's id), which this returns
 */
static char *
set_up_voucher(PGconn *conn, const char *qschema, const Options *opt)
{
	char		limit[16];
	const char *params[1] = {limit};
	char	   *sql;
	char	   *code;
	PGresult   *res;

	snprintf(limit, sizeof(limit), "%d", opt->voucher_limit);
	sql = psprintf("SELECT %1$s.shop_add_voucher_code(v.id, 'FLASHSALE-' || v.id)"
				   "  FROM %1$s.shop_create_voucher('flashsale', percent_off => 20,"
				   "                                usage_limit => $1::integer) AS v(id)",
				   qschema);
	res = run(conn, sql, 1, params);
	code = pg_strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	pg_free(sql);
	return code;
}

/*
 * One checkout of a buyer, with its retries: put the cart back (--tabs),
 * call shop_checkout, and when the connection is lost (or dropped on
 * purpose, --drop-first) reconnect and call again with the same key
 */
static void
check_out(Worker *w, Buyer *b)
{
	const Options *opt = w->sale->opt;
	char		id[24],
				key[64];
	const char *params[3] = {id, opt->keys ? key : NULL, w->sale->voucher_code};
	int			nparams = w->sale->voucher_code ? 3 : (opt->keys ? 2 : 1);
	double		deadline = now_ms() + opt->retry_seconds * 1000.0;
	PGresult   *res;

	snprintf(id, sizeof(id), "%lld", b->customer_id);
	snprintf(key, sizeof(key), "flashsale-%lld-%d", b->customer_id, b->tab);
	for (;;)
	{
		if (w->conn == NULL)
			w->conn = connect_worker(w->sale, deadline);
		if (w->conn == NULL)
		{
			snprintf(b->sqlstate, sizeof(b->sqlstate), "08006");
			b->message = pg_strdup("lost the connection, and could not reconnect in time");
			return;
		}
		if (w->sale->refill_sql != NULL && b->calls == 0)
			refill_cart(w, b);
		b->calls++;
		if (opt->drop_first && b->calls == 1)
		{
			/* Send the call, then drop the connection without its answer */
			if (opt->prepared ?
				PQsendQueryPrepared(w->conn, "checkout", nparams, params, NULL, NULL, 0) :
				PQsendQueryParams(w->conn, w->sale->checkout_sql, nparams, NULL, params,
								  NULL, NULL, 0))
				(void) PQflush(w->conn);
			PQfinish(w->conn);
			w->conn = NULL;
			continue;
		}
		res = run_statement(w, "checkout", w->sale->checkout_sql, nparams, params);
		if (opt->retry_seconds > 0 && PQresultStatus(res) != PGRES_TUPLES_OK &&
			connection_lost(res, w->conn) && now_ms() < deadline)
		{
			PQclear(res);
			PQfinish(w->conn);
			w->conn = NULL;
			continue;
		}

		/*
		 * With --tabs, another tab may have ordered the cart first: put it
		 * back and check out again, once, as a shopper would (with a new key:
		 * it is a new checkout)
		 */
		if (w->sale->refill_sql != NULL && !b->refilled &&
			PQresultStatus(res) != PGRES_TUPLES_OK &&
			strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
				   PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "SH002") == 0)
		{
			PQclear(res);
			b->refilled = true;
			refill_cart(w, b);
			snprintf(key, sizeof(key), "flashsale-%lld-%d-again", b->customer_id, b->tab);
			continue;
		}
		record_result(b, res, w->conn);
		PQclear(res);
		return;
	}
}

/* A buyer thread: wait for the start, then check out buyers until none left */
static void *
buyer_thread(void *arg)
{
	Worker	   *w = arg;
	Sale	   *sale = w->sale;

	pthread_barrier_wait(&sale->start);
	for (;;)
	{
		int			i = atomic_fetch_add(&sale->next_buyer, 1);
		Buyer	   *b;
		double		t0;

		if (i >= sale->nbuyers)
			break;
		b = &sale->buyers[i];
		t0 = now_ms();
		check_out(w, b);
		b->latency_ms = now_ms() - t0;
		b->done = true;
		atomic_fetch_add(&sale->finished, 1);
	}
	return NULL;
}

static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* The p-th percentile of sorted values (nearest rank) */
static double
percentile(const double *sorted, int n, double p)
{
	int			rank = (int) (p / 100.0 * n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* Release every buyer at once; return the wall time of the sale in ms */
static double
run_sale(Sale *sale, int nconn)
{
	Worker	   *workers = pg_malloc0(sizeof(Worker) * nconn);
	bool		tty = isatty(STDERR_FILENO) && !sale->opt->quiet;
	bool		drew = false;
	double		start,
				elapsed;

	pthread_barrier_init(&sale->start, NULL, nconn + 1);
	for (int t = 0; t < nconn; t++)
	{
		workers[t].sale = sale;
		workers[t].conn = connect_worker(sale, 0);
		if (pthread_create(&workers[t].thread, NULL, buyer_thread, &workers[t]) != 0)
			pg_fatal("cannot start thread %d of %d", t + 1, nconn);
	}

	pthread_barrier_wait(&sale->start);
	start = now_ms();
	while (atomic_load(&sale->finished) < sale->nbuyers)
	{
		usleep(20000);
		elapsed = now_ms() - start;
		if (tty && elapsed > 1000.0)
		{
			int			done = atomic_load(&sale->finished);

			fprintf(stderr, "\r  %d/%d checkouts, %.0f/s ...", done, sale->nbuyers,
					done / (elapsed / 1000.0));
			drew = true;
		}
	}
	elapsed = now_ms() - start;
	if (drew)
		fprintf(stderr, "\r\033[K");

	for (int t = 0; t < nconn; t++)
	{
		pthread_join(workers[t].thread, NULL);
		if (workers[t].conn != NULL)
			PQfinish(workers[t].conn);
	}
	pthread_barrier_destroy(&sale->start);
	pg_free(workers);
	return elapsed;
}

/* Print the seed's summary, the failures by SQLSTATE, throughput, latency */
static void
report(const Options *opt, const Buyer *buyers, int n, long long final_stock,
	   double elapsed_ms, int nconn)
{
	int			ok = 0,
				retried = 0;
	double	   *lat = pg_malloc(sizeof(double) * n);
	char		states[64][6];
	int			counts[64],
				nstates = 0;
	const char *examples[64];

	for (int i = 0; i < n; i++)
	{
		lat[i] = buyers[i].latency_ms;
		retried += buyers[i].calls > 1 + buyers[i].refilled;
		if (buyers[i].ordered)
		{
			ok++;
			continue;
		}
		for (int s = 0; s <= nstates; s++)
		{
			if (s == nstates)
			{
				if (nstates == 64)
					break;
				memcpy(states[s], buyers[i].sqlstate, 6);
				counts[s] = 0;
				examples[s] = buyers[i].message;
				nstates++;
			}
			if (strcmp(states[s], buyers[i].sqlstate) == 0)
			{
				counts[s]++;
				break;
			}
		}
	}
	qsort(lat, n, sizeof(double), compare_double);

	printf("✅ Successful orders: %d\n", ok);
	printf("❌ Failed orders: %d\n", n - ok);
	printf("📦 Final stock: %lld\n", final_stock);
	for (int s = 0; s < nstates; s++)
		printf("   %s × %d, e.g. %s\n", states[s], counts[s], examples[s]);
	printf("⏱  %d checkouts over %d connection%s in %.1f ms: %.0f checkouts/s\n",
		   n, nconn, nconn == 1 ? "" : "s", elapsed_ms, n / (elapsed_ms / 1000.0));
	printf("   latency ms: p50 %.2f, p95 %.2f, p99 %.2f, max %.2f\n",
		   percentile(lat, n, 50), percentile(lat, n, 95),
		   percentile(lat, n, 99), lat[n - 1]);
	if (retried > 0)
		printf("🔁 %d checkout%s called again with %s key after a lost connection\n",
			   retried, retried == 1 ? "" : "s", retried == 1 ? "its" : "their");
	pg_free(lat);
}

/* Report a broken invariant; count it */
static int	violations = 0;

static void violation(const char *fmt,...) pg_attribute_printf(1, 2);

static void
violation(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "INVARIANT FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	violations++;
}

/* What the checks of the invariants look at: the sale's rows */
typedef struct Checks
{
	PGconn	   *conn;
	const char *qschema;
	const Options *opt;
	const Buyer *buyers;
	char	   *product_array;	/* the sale's product ids, "{...}" */
	char	   *customer_array; /* its buyers' customer ids, "{...}" */
} Checks;

/*
 * Per product: initial stock - final stock on sale (its row plus its slots)
 * = quantity ordered; return the final stock of all the sale's products
 */
static long long
check_stock_moved(const Checks *c)
{
	const char *params[1] = {c->product_array};
	char	   *sql = psprintf("SELECT p.product_id, p.stock,"
							   "       (SELECT coalesce(sum(i.quantity%2$s), 0) FROM %1$s.order_items i"
							   "         WHERE i.product_id = p.product_id)"
							   "  FROM %1$s.product_stock p WHERE p.product_id = ANY ($1::bigint[])"
							   " ORDER BY p.product_id", c->qschema,
							   c->opt->preorder_cap > 0 ? " - i.preordered_quantity" : "");
	PGresult   *res = run(c->conn, sql, 1, params);
	long long	final_stock = 0;

	for (int r = 0; r < PQntuples(res); r++)
	{
		long long	stock = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		long long	sold = strtoll(PQgetvalue(res, r, 2), NULL, 10);

		final_stock += stock;
		if (c->opt->stock - stock != sold)
			violation("product %s: stock went %d -> %lld but %lld were ordered",
					  PQgetvalue(res, r, 0), c->opt->stock, stock, sold);
	}
	PQclear(res);
	pg_free(sql);
	return final_stock;
}

/* Every order has lines and its total equals them */
static void
check_order_totals(const Checks *c)
{
	const char *params[1] = {c->customer_array};

	/* with a voucher (1.2), the total is the lines' less the discount */
	char	   *sql = psprintf("SELECT o.id, o.total_cents,"
							   "       (SELECT count(*) FROM %1$s.order_items i WHERE i.order_id = o.id),"
							   "       (SELECT coalesce(sum(i.quantity * i.unit_price_cents), 0)"
							   "          FROM %1$s.order_items i WHERE i.order_id = o.id)"
							   "  FROM %1$s.orders o WHERE o.customer_id = ANY ($1::bigint[])"
							   "   AND (NOT EXISTS (SELECT 1 FROM %1$s.order_items i WHERE i.order_id = o.id)"
							   "        OR o.total_cents%2$s <> (SELECT sum(i.quantity * i.unit_price_cents)"
							   "                               FROM %1$s.order_items i WHERE i.order_id = o.id))",
							   c->qschema, c->opt->voucher_limit > 0 ? " + o.discount_cents" : "");
	PGresult   *res = run(c->conn, sql, 1, params);

	for (int r = 0; r < PQntuples(res); r++)
		violation("order %s: total %s, but %s lines totalling %s",
				  PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
				  PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
	PQclear(res);
	pg_free(sql);
}

/* "a,b,c": the orders a buyer's tabs were told of, in id order */
static char *
orders_told(const Buyer *tabs, int ntabs)
{
	long long  *told = pg_malloc(sizeof(long long) * ntabs);
	int			ntold = 0;
	PQExpBufferData buf;

	for (int t = 0; t < ntabs; t++)
		if (tabs[t].ordered)
		{
			int			k = ntold++;

			while (k > 0 && told[k - 1] > tabs[t].order_id)
			{
				told[k] = told[k - 1];
				k--;
			}
			told[k] = tabs[t].order_id;
		}
	initPQExpBuffer(&buf);
	for (int k = 0; k < ntold; k++)
		appendPQExpBuffer(&buf, k ? ",%lld" : "%lld", told[k]);
	if (PQExpBufferDataBroken(buf))
		pg_fatal("out of memory");
	pg_free(told);
	return buf.data;
}

/*
 * Every buyer has exactly the orders it was told of; with one tab, its cart
 * was emptied by its order, and is intact otherwise
 */
static void
check_buyers_told_truth(const Checks *c)
{
	const Options *opt = c->opt;
	const char *params[1] = {c->customer_array};
	char	   *sql = psprintf("SELECT c.id,"
							   "       (SELECT pg_catalog.string_agg(o.id::text, ',' ORDER BY o.id)"
							   "          FROM %1$s.orders o WHERE o.customer_id = c.id),"
							   "       (SELECT count(*) FROM %1$s.cart_items ci WHERE ci.customer_id = c.id),"
							   "       (SELECT coalesce(sum(ci.quantity), 0) FROM %1$s.cart_items ci"
							   "         WHERE ci.customer_id = c.id)"
							   "  FROM pg_catalog.unnest($1::bigint[]) AS c(id) ORDER BY c.id",
							   c->qschema);
	PGresult   *res = run(c->conn, sql, 1, params);
	int			cursor = 0;

	for (int i = 0; i < opt->buyers; i++)
	{
		const Buyer *b = &c->buyers[i * opt->tabs];
		char	   *told;
		const char *orders;
		long long	lines,
					quantity;

		/* rows come in customer id order; buyers were created in that order */
		while (cursor < PQntuples(res) &&
			   strtoll(PQgetvalue(res, cursor, 0), NULL, 10) != b->customer_id)
			cursor++;
		if (cursor == PQntuples(res))
		{
			violation("buyer %lld is missing", b->customer_id);
			cursor = 0;
			continue;
		}
		orders = PQgetvalue(res, cursor, 1);
		lines = strtoll(PQgetvalue(res, cursor, 2), NULL, 10);
		quantity = strtoll(PQgetvalue(res, cursor, 3), NULL, 10);

		told = orders_told(b, opt->tabs);
		if (strcmp(orders, told) != 0)
			violation("buyer %lld was told %s%s but has orders {%s}",
					  b->customer_id, told[0] ? "of orders " : "no order",
					  told, orders);
		pg_free(told);

		if (opt->tabs > 1)
			continue;
		if (b->ordered && lines != 0)
			violation("buyer %lld ordered but %lld lines are still in the cart",
					  b->customer_id, lines);
		if (!b->ordered &&
			(lines != opt->lines || quantity != (long long) opt->lines * opt->quantity))
			violation("buyer %lld failed (%s) but its cart changed: %lld lines, quantity %lld",
					  b->customer_id, b->sqlstate, lines, quantity);
	}
	PQclear(res);
	pg_free(sql);
}

/*
 * No false "sold out": stock only falls during the sale, so a buyer told
 * SH001 must still have a cart line that the final stock on sale cannot
 * serve (with one tab per buyer)
 */
static void
check_no_false_sold_out(const Checks *c)
{
	long long  *rejected = pg_malloc(sizeof(long long) * c->opt->buyers);
	int			nrejected = 0;
	const char *params[1];
	char	   *room;
	char	   *sql;
	PGresult   *res;

	for (int i = 0; i < c->opt->buyers && c->opt->tabs == 1; i++)
		if (!c->buyers[i].ordered && strcmp(c->buyers[i].sqlstate, "SH001") == 0)
			rejected[nrejected++] = c->buyers[i].customer_id;
	params[0] = array_literal(rejected, nrejected);
	/* with --preorder, what a buyer could still preorder counts too */
	room = c->opt->preorder_cap > 0 ?
		psprintf(" + coalesce((SELECT greatest(po.max_preorders - po.open_preorders, 0)"
				 "               FROM %s.preorders po WHERE po.product_id = ci.product_id), 0)",
				 c->qschema) : pg_strdup("");
	sql = psprintf("SELECT c.id FROM pg_catalog.unnest($1::bigint[]) AS c(id)"
				   " WHERE NOT EXISTS (SELECT 1 FROM %1$s.cart_items ci"
				   "                     JOIN %1$s.product_stock ps ON ps.product_id = ci.product_id"
				   "                    WHERE ci.customer_id = c.id AND ps.stock%2$s < ci.quantity)"
				   " ORDER BY c.id", c->qschema, room);
	pg_free(room);
	res = run(c->conn, sql, 1, params);
	for (int r = 0; r < PQntuples(res); r++)
		violation("buyer %s was told SH001, but the stock left could serve its cart",
				  PQgetvalue(res, r, 0));
	PQclear(res);
	pg_free(sql);
	pg_free((char *) params[0]);
	pg_free(rejected);
}

/*
 * --locations, --preorder: shop_check_integrity() finds nothing on the
 * sale's products (every kind: the books of every location, every order
 * line's allocations, the preorders' counts)
 */
static void
check_books(const Checks *c)
{
	const char *params[1] = {c->product_array};
	char	   *sql = psprintf("SELECT i.problem, i.product_id, i.order_id, i.detail"
							   "  FROM %1$s.shop_check_integrity() AS i"
							   " WHERE i.product_id = ANY ($1::bigint[])", c->qschema);
	PGresult   *res = run(c->conn, sql, 1, params);

	for (int r = 0; r < PQntuples(res); r++)
		violation("%s: product %s, order %s: %s", PQgetvalue(res, r, 0),
				  PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
	PQclear(res);
	pg_free(sql);
}

/*
 * --preorder: no product has more units preordered than its cap (nothing
 * fills them during a sale), and the count of open ones matches
 */
static void
check_preorders(const Checks *c)
{
	const char *params[1] = {c->product_array};
	char	   *sql = psprintf("SELECT po.product_id, po.max_preorders, po.open_preorders,"
							   "       (SELECT coalesce(sum(i.preordered_quantity), 0)"
							   "          FROM %1$s.order_items i WHERE i.product_id = po.product_id)"
							   "  FROM %1$s.preorders po WHERE po.product_id = ANY ($1::bigint[])"
							   " ORDER BY po.product_id", c->qschema);
	PGresult   *res = run(c->conn, sql, 1, params);

	for (int r = 0; r < PQntuples(res); r++)
	{
		long long	cap = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		long long	open = strtoll(PQgetvalue(res, r, 2), NULL, 10);
		long long	preordered = strtoll(PQgetvalue(res, r, 3), NULL, 10);

		if (preordered > cap || open != preordered)
			violation("product %s: %lld units preordered (%lld counted open), cap %lld",
					  PQgetvalue(res, r, 0), preordered, open, cap);
	}
	PQclear(res);
	pg_free(sql);
}

/* Nobody bought past the limit, counting orders not cancelled */
static void
check_limit_held(const Checks *c)
{
	char		limit[16];
	const char *params[2] = {c->product_array, limit};
	char	   *sql;
	PGresult   *res;

	snprintf(limit, sizeof(limit), "%d", c->opt->limit);
	sql = psprintf("SELECT o.customer_id, i.product_id,"
				   "       pg_catalog.sum(i.quantity - i.cancelled_quantity)"
				   "  FROM %1$s.orders o JOIN %1$s.order_items i ON i.order_id = o.id"
				   " WHERE i.product_id = ANY ($1::bigint[]) AND o.status <> 'cancelled'"
				   " GROUP BY o.customer_id, i.product_id "
				   "HAVING pg_catalog.sum(i.quantity - i.cancelled_quantity) > $2::integer",
				   c->qschema);
	res = run(c->conn, sql, 2, params);
	for (int r = 0; r < PQntuples(res); r++)
		violation("buyer %s bought %s of product %s, past the limit of %d",
				  PQgetvalue(res, r, 0), PQgetvalue(res, r, 2),
				  PQgetvalue(res, r, 1), c->opt->limit);
	PQclear(res);
	pg_free(sql);
}

/*
 * The voucher held: orders not cancelled with it are at most its limit,
 * and exactly that if a buyer was told SH010 (no false "used up"); each of
 * the sale's orders carries it (every buyer typed its code), with 20% of
 * its subtotal off, rounded down, shared by its lines
 */
static void
check_voucher_held(const Checks *c)
{
	const Options *opt = c->opt;
	const char *params[1] = {c->customer_array};
	char	   *sql = psprintf("SELECT count(*) FILTER (WHERE o.status <> 'cancelled'"
							   "                           AND o.voucher_id IS NOT NULL),"
							   "       count(*) FILTER (WHERE o.voucher_id IS NULL),"
							   "       count(*) FILTER (WHERE o.discount_cents <> l.subtotal * 20 / 100"
							   "                           OR o.discount_cents <> l.shares)"
							   "  FROM %1$s.orders o"
							   " CROSS JOIN LATERAL ("
							   "       SELECT sum(i.quantity * i.unit_price_cents) AS subtotal,"
							   "              sum(i.discount_cents) AS shares"
							   "         FROM %1$s.order_items i WHERE i.order_id = o.id) AS l"
							   " WHERE o.customer_id = ANY ($1::bigint[])",
							   c->qschema);
	PGresult   *res = run(c->conn, sql, 1, params);
	long long	used = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	long long	without = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	long long	wrong = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	int			told_used_up = 0;

	for (int i = 0; i < opt->buyers * opt->tabs; i++)
	{
		const Buyer *b = &c->buyers[i];

		told_used_up += !b->ordered && strcmp(b->sqlstate, "SH010") == 0;

		/*
		 * a voucher sale ends in an order, SH010 or SH001: no deadlock, no
		 * bug
		 */
		if (!b->ordered && strcmp(b->sqlstate, "SH010") != 0 && strcmp(b->sqlstate, "SH001") != 0)
			violation("buyer %lld failed with %s (%s), not with an order, SH010 or SH001",
					  b->customer_id, b->sqlstate, b->message ? b->message : "");
	}
	if (used > opt->voucher_limit)
		violation("%lld orders carry the voucher, past its limit of %d", used,
				  opt->voucher_limit);
	if (told_used_up > 0 && used < opt->voucher_limit)
		violation("%d buyers were told SH010, but only %lld of the voucher's %d uses are taken",
				  told_used_up, used, opt->voucher_limit);
	if (without > 0)
		violation("%lld orders do not carry the voucher their buyer typed", without);
	if (wrong > 0)
		violation("%lld orders do not have 20%% of their subtotal off, shared by their lines",
				  wrong);
	PQclear(res);
	pg_free(sql);
}

/*
 * Check the invariants on the rows this sale created; return the final
 * stock of all its products.
 */
static long long
check_invariants(PGconn *conn, const char *qschema, const Options *opt,
				 const long long *product_ids, const Buyer *buyers)
{
	long long  *customer_ids = pg_malloc(sizeof(long long) * opt->buyers);
	Checks		c = {conn, qschema, opt, buyers};
	long long	final_stock;

	for (int i = 0; i < opt->buyers; i++)
		customer_ids[i] = buyers[i * opt->tabs].customer_id;
	c.product_array = array_literal(product_ids, opt->products);
	c.customer_array = array_literal(customer_ids, opt->buyers);

	final_stock = check_stock_moved(&c);
	check_order_totals(&c);
	check_buyers_told_truth(&c);
	check_no_false_sold_out(&c);
	if (opt->limit > 0)
		check_limit_held(&c);
	if (opt->voucher_limit > 0)
		check_voucher_held(&c);
	if (opt->preorder_cap > 0)
		check_preorders(&c);
	if (opt->locations > 1 || opt->preorder_cap > 0)
		check_books(&c);

	pg_free(c.product_array);
	pg_free(c.customer_array);
	pg_free(customer_ids);
	return final_stock;
}

/* The connection for the checks, retrying while the server restarts */
static PGconn *
connect_checks(const Options *opt)
{
	double		deadline = now_ms() + Max(opt->retry_seconds, 1) * 1000.0;
	PGconn	   *conn;

	while ((conn = connect_or_null(opt)) == NULL && now_ms() < deadline)
		usleep(100000);
	if (conn == NULL)
		conn = connect_or_die(opt, EXIT_RUN);
	PQsetNoticeProcessor(conn, NULL, NULL);
	return conn;
}

/* Compare a result with an --expect-* option; report a mismatch */
static int
expect(const char *what, long long expected, long long got)
{
	if (expected < 0 || expected == got)
		return 0;
	fprintf(stderr, "EXPECTATION FAILED: %s: expected %lld, got %lld\n",
			what, expected, got);
	return 1;
}

int
main(int argc, char **argv)
{
	Options		opt;
	PGconn	   *conn;
	char	   *qschema;
	long long  *product_ids;
	Sale		sale = {0};
	int			nconn,
				room,
				orders = 0,
				rejected = 0,
				mismatches = 0;
	long long	final_stock;
	double		elapsed;

	pg_logging_init(argv[0]);
	progname = get_progname(argv[0]);
	parse_options(argc, argv, &opt);

	conn = connect_or_die(&opt, EXIT_SETUP);
	PQsetNoticeProcessor(conn, NULL, NULL);
	qschema = extension_schema(conn);

	/* One connection per buyer by default, within what the server allows */
	room = server_connection_room(conn) - 1;
	nconn = opt.clients ? opt.clients : opt.buyers * opt.tabs;
	if (nconn > opt.buyers * opt.tabs)
		nconn = opt.buyers * opt.tabs;
	if (nconn > room)
	{
		if (opt.clients)
			pg_fatal("the server has room for %d more connections, not --client=%d; raise max_connections",
					 room, opt.clients);
		nconn = room < 1 ? 1 : room;
	}

	product_ids = pg_malloc0(sizeof(long long) * opt.products);
	sale.opt = &opt;
	sale.nbuyers = opt.buyers * opt.tabs;
	sale.buyers = pg_malloc0(sizeof(Buyer) * sale.nbuyers);
	set_up_sale(conn, qschema, &opt, product_ids, sale.buyers);
	if (opt.voucher_limit > 0)
		sale.voucher_code = set_up_voucher(conn, qschema, &opt);
	sale.checkout_sql = psprintf(opt.voucher_limit > 0 ?
								 "SELECT %1$s.shop_checkout($1::bigint, $2::text, $3::text)" :
								 opt.keys ? "SELECT %1$s.shop_checkout($1::bigint, $2::text)" :
								 "SELECT %1$s.shop_checkout($1::bigint)", qschema);
	sale.product_ids = product_ids;
	if (opt.tabs > 1)
		sale.refill_sql = psprintf("INSERT INTO %1$s.cart_items (customer_id, product_id, quantity)"
								   " SELECT $1::bigint, p.id, $3::integer"
								   "   FROM pg_catalog.unnest($2::bigint[]) AS p(id)"
								   " ON CONFLICT DO NOTHING", qschema);

	elapsed = run_sale(&sale, nconn);

	/* The server may have restarted during the sale (--retry) */
	PQfinish(conn);
	conn = connect_checks(&opt);
	final_stock = check_invariants(conn, qschema, &opt, product_ids, sale.buyers);
	for (int i = 0; i < sale.nbuyers; i++)
	{
		orders += sale.buyers[i].ordered;
		rejected += !sale.buyers[i].ordered &&
			strcmp(sale.buyers[i].sqlstate, "SH001") == 0;
	}
	if (!opt.quiet)
		report(&opt, sale.buyers, sale.nbuyers, final_stock, elapsed, nconn);

	/* A buyer that lost its connection is an error of the run */
	for (int i = 0; i < sale.nbuyers; i++)
		if (!sale.buyers[i].ordered &&
			(strcmp(sale.buyers[i].sqlstate, "?????") == 0 ||
			 strncmp(sale.buyers[i].sqlstate, "08", 2) == 0 ||
			 strncmp(sale.buyers[i].sqlstate, "57", 2) == 0))
		{
			pg_log_error("buyer %lld lost its connection: %s",
						 sale.buyers[i].customer_id, sale.buyers[i].message);
			mismatches++;
		}
	mismatches += expect("successful orders", opt.expect_orders, orders);
	mismatches += expect("SH001 rejections", opt.expect_rejected, rejected);
	mismatches += expect("final stock", opt.expect_stock, final_stock);

	if (violations > 0)
		pg_log_error("%d invariant%s FAILED", violations, violations == 1 ? "" : "s");
	else if (!opt.quiet)
	{
		if (opt.tabs == 1)
			printf("🔒 Invariants hold: stock moved = quantity ordered, every order has its lines and its total,\n"
				   "   every buyer has exactly the order it was told of, failed buyers' carts are intact,\n"
				   "   no buyer was told SH001 while the stock left could serve its cart.\n");
		else
			printf("🔒 Invariants hold: stock moved = quantity ordered, every order has its lines and its total,\n"
				   "   every buyer has exactly the orders its %d tabs were told of.\n", opt.tabs);
		if (opt.limit > 0)
			printf("   Nobody bought more than %d of a product.\n", opt.limit);
		if (opt.voucher_limit > 0)
			printf("   The voucher served at most its %d uses, each order its discount.\n",
				   opt.voucher_limit);
	}

	PQfinish(conn);
	return (violations > 0 || mismatches > 0) ? EXIT_RUN : 0;
}
