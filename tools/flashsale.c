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
 *	  that the final stock on sale cannot serve (stock only falls meanwhile).
 *
 * Threads: one per connection.  Each takes the next buyer from a shared
 * atomic counter and records the result in that buyer's slot; no other
 * state is shared.  The main thread only draws the progress line.
 *
 * Exit status: 0 all is well; 1 an invariant or an --expect-* failed;
 * 2 bad options; 3 the server could not be reached or set up.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define EXIT_INVARIANT	1
#define EXIT_USAGE		2
#define EXIT_SERVER		3

/* What the command line asks for */
typedef struct Options
{
	const char *conninfo;
	int			buyers;
	int			stock;
	int			products;
	int			lines;
	int			quantity;
	long long	price_cents;
	int			connections;	/* 0: one per buyer, up to the server's limit */
	const char *name;
	bool		quiet;
	long long	expect_orders;	/* -1: not checked */
	long long	expect_rejected;
	long long	expect_stock;
	int			slots;			/* stock slots per product; 0 = none */
} Options;

/* One buyer: its customer id, and what its checkout returned */
typedef struct Buyer
{
	long long	customer_id;
	bool		done;
	bool		ordered;
	long long	order_id;
	char		sqlstate[6];
	char	   *message;		/* first line of the error, malloc'd */
	double		latency_ms;
} Buyer;

/* State shared by the buyer threads */
typedef struct Sale
{
	const Options *opt;
	const char *checkout_sql;
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

static const char *progname = "flashsale";

/* Print a message and exit with the given status */
static void
die(int status, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

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
			"Usage: %s [OPTION]...\n"
			"\n"
			"Run a flash sale against the checkout extension: create products, buyers and\n"
			"their carts, release every buyer at the same instant (each calls\n"
			"SELECT shop_checkout($1)), print the result, then check the invariants.\n"
			"\n"
			"Options:\n"
			"  -d, --dbname=CONNINFO    database name or connection string (default: the PG*\n"
			"                           environment variables)\n"
			"  -b, --buyers=N           buyers, each with a cart (default 33)\n"
			"  -s, --stock=N            stock of each product (default 20)\n"
			"  -p, --products=N         products on sale (default 1)\n"
			"  -l, --lines=K            cart lines per buyer, over K different products\n"
			"                           (default 1; at most --products)\n"
			"  -q, --quantity=N         quantity of each cart line (default 1)\n"
			"      --price=CENTS        price of each product in cents (default 49900)\n"
			"  -c, --connections=N      concurrent connections (default: one per buyer, up to\n"
			"                           what the server allows); each runs buyers in turn\n"
			"  -n, --name=TEXT          name of the first product (default \"Flash Sale Smartphone\")\n"
			"      --quiet              print only failures of invariants and expectations\n"
			"      --expect-orders=N    exit 1 unless exactly N orders succeed\n"
			"      --expect-rejected=N  exit 1 unless exactly N checkouts fail with SH001\n"
			"      --expect-stock=N     exit 1 unless the final stock (all products) is N\n"
			"      --slots=N            split each product's stock into N slots (2 to 64)\n"
			"                           with shop_split_stock() (default 0: none)\n"
			"  -h, --help               show this help and exit\n"
			"\n"
			"Exit status: 0 success; 1 an invariant or expectation failed; 2 bad options;\n"
			"3 the server could not be reached or the sale could not be set up.\n",
			progname);
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
		die(EXIT_USAGE, "--%s must be a whole number from %lld to %lld, not \"%s\"",
			name, min, max, arg);
	return value;
}

static void
parse_options(int argc, char **argv, Options *opt)
{
	enum
	{
		OPT_PRICE = 256, OPT_QUIET, OPT_EXPECT_ORDERS, OPT_EXPECT_REJECTED,
		OPT_EXPECT_STOCK, OPT_SLOTS
	};
	static const struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"buyers", required_argument, NULL, 'b'},
		{"stock", required_argument, NULL, 's'},
		{"products", required_argument, NULL, 'p'},
		{"lines", required_argument, NULL, 'l'},
		{"quantity", required_argument, NULL, 'q'},
		{"price", required_argument, NULL, OPT_PRICE},
		{"connections", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"expect-orders", required_argument, NULL, OPT_EXPECT_ORDERS},
		{"expect-rejected", required_argument, NULL, OPT_EXPECT_REJECTED},
		{"expect-stock", required_argument, NULL, OPT_EXPECT_STOCK},
		{"slots", required_argument, NULL, OPT_SLOTS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	*opt = (Options)
	{
		.conninfo = "",.buyers = 33,.stock = 20,.products = 1,.lines = 1,
			.quantity = 1,.price_cents = 49900,.connections = 0,
			.name = "Flash Sale Smartphone",.expect_orders = -1,
			.expect_rejected = -1,.expect_stock = -1
	};

	while ((c = getopt_long(argc, argv, "d:b:s:p:l:q:c:n:h", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opt->conninfo = optarg;
				break;
			case 'b':
				opt->buyers = (int) parse_number("buyers", optarg, 1, 1000000);
				break;
			case 's':
				opt->stock = (int) parse_number("stock", optarg, 0, INT_MAX);
				break;
			case 'p':
				opt->products = (int) parse_number("products", optarg, 1, 100000);
				break;
			case 'l':
				opt->lines = (int) parse_number("lines", optarg, 1, 1000);
				break;
			case 'q':
				opt->quantity = (int) parse_number("quantity", optarg, 1, INT_MAX);
				break;
			case OPT_PRICE:
				opt->price_cents = parse_number("price", optarg, 0, 1000000000000LL);
				break;
			case 'c':
				opt->connections = (int) parse_number("connections", optarg, 1, 10000);
				break;
			case 'n':
				opt->name = optarg;
				break;
			case OPT_QUIET:
				opt->quiet = true;
				break;
			case OPT_EXPECT_ORDERS:
				opt->expect_orders = parse_number("expect-orders", optarg, 0, LLONG_MAX);
				break;
			case OPT_EXPECT_REJECTED:
				opt->expect_rejected = parse_number("expect-rejected", optarg, 0, LLONG_MAX);
				break;
			case OPT_EXPECT_STOCK:
				opt->expect_stock = parse_number("expect-stock", optarg, 0, LLONG_MAX);
				break;
			case OPT_SLOTS:
				opt->slots = (int) parse_number("slots", optarg, 0, 64);
				if (opt->slots == 1)
					die(EXIT_USAGE, "--slots must be 0 (none) or 2 to 64, not 1");
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
				exit(EXIT_USAGE);
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument \"%s\"; try \"%s --help\"",
			argv[optind], progname);
	if (opt->lines > opt->products)
		die(EXIT_USAGE, "--lines (%d) must not exceed --products (%d): a cart holds each product once",
			opt->lines, opt->products);
}

/* Connect (conninfo: a database name or a connection string), or exit 3 */
static PGconn *
connect_or_die(const char *conninfo)
{
	const char *const keys[] = {"dbname", "fallback_application_name", NULL};
	const char *const values[] = {conninfo, progname, NULL};
	PGconn	   *conn = PQconnectdbParams(keys, values, 1);

	if (PQstatus(conn) != CONNECTION_OK)
		die(EXIT_SERVER, "cannot connect to the server: %s", PQerrorMessage(conn));
	return conn;
}

/*
 * Run a statement with text parameters; exit 3 on failure.  The caller
 * PQclear()s the result.
 */
static PGresult *
run(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		die(EXIT_SERVER, "query failed: %s\nquery: %s", PQerrorMessage(conn), sql);
	return res;
}

/* Build a SQL statement with every "@" replaced by the quoted schema */
static char *
with_schema(const char *template, const char *qschema)
{
	size_t		len = strlen(template) + 1;
	char	   *sql,
			   *out;

	for (const char *p = template; *p; p++)
		if (*p == '@')
			len += strlen(qschema);
	sql = out = malloc(len);
	for (const char *p = template; *p; p++)
	{
		if (*p == '@')
			out = stpcpy(out, qschema);
		else
			*out++ = *p;
	}
	*out = '\0';
	return sql;
}

/* A growing text buffer, for array literals */
typedef struct Text
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Text;

static void
text_printf(Text *t, const char *fmt,...)
{
	va_list		ap;
	int			n;

	for (;;)
	{
		size_t		room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->data ? t->data + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if ((size_t) n < room)
			break;
		t->cap = (t->cap + n + 1) * 2;
		t->data = realloc(t->data, t->cap);
	}
	t->len += n;
}

/* "{a,b,c}" from n numbers */
static char *
array_literal(const long long *values, int n)
{
	Text		t = {0};

	text_printf(&t, "{");
	for (int i = 0; i < n; i++)
		text_printf(&t, i ? ",%lld" : "%lld", values[i]);
	text_printf(&t, "}");
	return t.data;
}

/* Product index of line j of buyer i's cart: K distinct products, spread */
static int
cart_product(const Options *opt, int buyer, int line)
{
	return (buyer + line) % opt->products;
}

/*
 * Find the extension's schema and return it quoted; exit 3 when the
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
		die(EXIT_SERVER, "the checkout extension is not installed in database \"%s\"; run CREATE EXTENSION checkout",
			PQdb(conn));
	qschema = PQescapeIdentifier(conn, PQgetvalue(res, 0, 0),
								 strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	return qschema;
}

/* Create the sale's products, buyers and carts; fill product_ids, buyers */
static void
set_up_sale(PGconn *conn, const char *qschema, const Options *opt,
			long long *product_ids, Buyer *buyers)
{
	char		products[16], stock[16], price[24], nbuyers[16];
	const char *params[4];
	long long  *cart_customer, *cart_product_id, *cart_quantity;
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
	sql = with_schema("INSERT INTO @.products (name, price_cents, stock)"
					  " SELECT CASE WHEN g = 1 THEN $1 ELSE $1 || ' #' || g END,"
					  "        $2::bigint, $3::integer"
					  "   FROM pg_catalog.generate_series(1, $4::integer) AS g"
					  " ORDER BY g RETURNING id", qschema);
	res = run(conn, sql, 4, params);
	free(sql);
	for (int i = 0; i < opt->products; i++)
		product_ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);

	if (opt->slots > 0)
	{
		char		slots[16];

		snprintf(slots, sizeof(slots), "%d", opt->slots);
		params[0] = array_literal(product_ids, opt->products);
		params[1] = slots;
		sql = with_schema("SELECT @.shop_split_stock(p.id, $2::integer)"
						  "  FROM pg_catalog.unnest($1::bigint[]) AS p(id)", qschema);
		PQclear(run(conn, sql, 2, params));
		free(sql);
		free((char *) params[0]);
	}

	params[0] = nbuyers;
	sql = with_schema("INSERT INTO @.customers (name)"
					  " SELECT 'flashsale buyer ' || g"
					  "   FROM pg_catalog.generate_series(1, $1::integer) AS g"
					  " ORDER BY g RETURNING id", qschema);
	res = run(conn, sql, 1, params);
	free(sql);
	for (int i = 0; i < opt->buyers; i++)
		buyers[i].customer_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);

	cart_customer = malloc(sizeof(long long) * ncart);
	cart_product_id = malloc(sizeof(long long) * ncart);
	cart_quantity = malloc(sizeof(long long) * ncart);
	for (int i = 0; i < opt->buyers; i++)
		for (int j = 0; j < opt->lines; j++)
		{
			int			k = i * opt->lines + j;

			cart_customer[k] = buyers[i].customer_id;
			cart_product_id[k] = product_ids[cart_product(opt, i, j)];
			cart_quantity[k] = opt->quantity;
		}
	params[0] = array_literal(cart_customer, ncart);
	params[1] = array_literal(cart_product_id, ncart);
	params[2] = array_literal(cart_quantity, ncart);
	sql = with_schema("INSERT INTO @.cart_items (customer_id, product_id, quantity)"
					  " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[])",
					  qschema);
	PQclear(run(conn, sql, 3, params));
	free(sql);
	for (int i = 0; i < 3; i++)
		free((char *) params[i]);
	free(cart_customer);
	free(cart_product_id);
	free(cart_quantity);

	PQclear(run(conn, "COMMIT", 0, NULL));
}

/* How many connections the server will take from us */
static int
server_connection_room(PGconn *conn)
{
	PGresult   *res = run(conn,
						  "SELECT pg_catalog.current_setting('max_connections')::int"
						  "     - pg_catalog.current_setting('superuser_reserved_connections')::int"
						  "     - (SELECT count(*) FROM pg_catalog.pg_stat_activity)::int",
						  0, NULL);
	int			room = atoi(PQgetvalue(res, 0, 0));

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
		b->message = strdup(msg ? msg : PQerrorMessage(conn));
		b->message[strcspn(b->message, "\n")] = '\0';
	}
}

/* A buyer thread: wait for the start, then check out buyers until none left */
static void *
buyer_thread(void *arg)
{
	Worker	   *w = arg;
	Sale	   *sale = w->sale;
	char		id[24];
	const char *params[1] = {id};

	pthread_barrier_wait(&sale->start);
	for (;;)
	{
		int			i = atomic_fetch_add(&sale->next_buyer, 1);
		Buyer	   *b;
		PGresult   *res;
		double		t0;

		if (i >= sale->nbuyers)
			break;
		b = &sale->buyers[i];
		snprintf(id, sizeof(id), "%lld", b->customer_id);
		t0 = now_ms();
		res = PQexecPrepared(w->conn, "checkout", 1, params, NULL, NULL, 0);
		b->latency_ms = now_ms() - t0;
		record_result(b, res, w->conn);
		PQclear(res);
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
	Worker	   *workers = calloc(nconn, sizeof(Worker));
	bool		tty = isatty(STDERR_FILENO) && !sale->opt->quiet;
	bool		drew = false;
	double		start, elapsed;

	pthread_barrier_init(&sale->start, NULL, nconn + 1);
	for (int t = 0; t < nconn; t++)
	{
		PGresult   *res;

		workers[t].sale = sale;
		workers[t].conn = connect_or_die(sale->opt->conninfo);
		res = PQprepare(workers[t].conn, "checkout", sale->checkout_sql, 1, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die(EXIT_SERVER, "cannot prepare the checkout: %s",
				PQerrorMessage(workers[t].conn));
		PQclear(res);
		if (pthread_create(&workers[t].thread, NULL, buyer_thread, &workers[t]) != 0)
			die(EXIT_SERVER, "cannot start thread %d of %d", t + 1, nconn);
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
		PQfinish(workers[t].conn);
	}
	pthread_barrier_destroy(&sale->start);
	free(workers);
	return elapsed;
}

/* Print the seed's summary, the failures by SQLSTATE, throughput, latency */
static void
report(const Options *opt, const Buyer *buyers, long long final_stock,
	   double elapsed_ms, int nconn)
{
	int			n = opt->buyers, ok = 0;
	double	   *lat = malloc(sizeof(double) * n);
	char		states[64][6];
	int			counts[64], nstates = 0;
	const char *examples[64];

	for (int i = 0; i < n; i++)
	{
		lat[i] = buyers[i].latency_ms;
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
	free(lat);
}

/* Report a broken invariant; count it */
static int	violations = 0;

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

/*
 * Check the invariants on the rows this sale created; return the final
 * stock of all its products.
 */
static long long
check_invariants(PGconn *conn, const char *qschema, const Options *opt,
				 const long long *product_ids, const Buyer *buyers)
{
	long long  *customer_ids = malloc(sizeof(long long) * opt->buyers);
	const char *params[2];
	PGresult   *res;
	char	   *sql;
	long long	final_stock = 0;
	int			cursor = 0;

	for (int i = 0; i < opt->buyers; i++)
		customer_ids[i] = buyers[i].customer_id;
	params[0] = array_literal(product_ids, opt->products);
	params[1] = array_literal(customer_ids, opt->buyers);

	/*
	 * Per product: initial stock - final stock on sale (its row plus its
	 * slots) = quantity ordered
	 */
	sql = with_schema("SELECT p.product_id, p.stock,"
					  "       (SELECT coalesce(sum(i.quantity), 0) FROM @.order_items i"
					  "         WHERE i.product_id = p.product_id)"
					  "  FROM @.product_stock p WHERE p.product_id = ANY ($1::bigint[])"
					  " ORDER BY p.product_id",
					  qschema);
	res = run(conn, sql, 1, params);
	free(sql);
	for (int r = 0; r < PQntuples(res); r++)
	{
		long long	stock = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		long long	sold = strtoll(PQgetvalue(res, r, 2), NULL, 10);

		final_stock += stock;
		if (opt->stock - stock != sold)
			violation("product %s: stock went %d -> %lld but %lld were ordered",
					  PQgetvalue(res, r, 0), opt->stock, stock, sold);
	}
	PQclear(res);

	/* Every order has lines and its total equals them */
	sql = with_schema("SELECT o.id, o.total_cents,"
					  "       (SELECT count(*) FROM @.order_items i WHERE i.order_id = o.id),"
					  "       (SELECT coalesce(sum(i.quantity * i.unit_price_cents), 0)"
					  "          FROM @.order_items i WHERE i.order_id = o.id)"
					  "  FROM @.orders o WHERE o.customer_id = ANY ($1::bigint[])"
					  "   AND (NOT EXISTS (SELECT 1 FROM @.order_items i WHERE i.order_id = o.id)"
					  "        OR o.total_cents <> (SELECT sum(i.quantity * i.unit_price_cents)"
					  "                               FROM @.order_items i WHERE i.order_id = o.id))",
					  qschema);
	res = run(conn, sql, 1, params + 1);
	free(sql);
	for (int r = 0; r < PQntuples(res); r++)
		violation("order %s: total %s, but %s lines totalling %s",
				  PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
				  PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
	PQclear(res);

	/*
	 * Per buyer, in customer id order: its orders, its cart lines and their
	 * quantity.
	 */
	sql = with_schema("SELECT c.id,"
					  "       (SELECT pg_catalog.string_agg(o.id::text, ',') FROM @.orders o"
					  "         WHERE o.customer_id = c.id),"
					  "       (SELECT count(*) FROM @.cart_items ci WHERE ci.customer_id = c.id),"
					  "       (SELECT coalesce(sum(ci.quantity), 0) FROM @.cart_items ci"
					  "         WHERE ci.customer_id = c.id)"
					  "  FROM pg_catalog.unnest($1::bigint[]) AS c(id) ORDER BY c.id",
					  qschema);
	res = run(conn, sql, 1, params + 1);
	free(sql);
	for (int i = 0; i < opt->buyers; i++)
	{
		const Buyer *b = &buyers[i];
		char		expected_orders[24] = "";
		const char *orders;
		long long	lines, quantity;

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
		if (b->ordered)
			snprintf(expected_orders, sizeof(expected_orders), "%lld", b->order_id);
		if (strcmp(orders, expected_orders) != 0)
			violation("buyer %lld was told %s%s but has orders {%s}",
					  b->customer_id, b->ordered ? "order " : "no order",
					  expected_orders, orders);
		if (b->ordered && lines != 0)
			violation("buyer %lld ordered but %lld lines are still in the cart",
					  b->customer_id, lines);
		if (!b->ordered &&
			(lines != opt->lines || quantity != (long long) opt->lines * opt->quantity))
			violation("buyer %lld failed (%s) but its cart changed: %lld lines, quantity %lld",
					  b->customer_id, b->sqlstate, lines, quantity);
	}
	PQclear(res);

	/*
	 * No false "sold out": stock only falls during the sale, so a buyer told
	 * SH001 must still have a cart line that the final stock on sale cannot
	 * serve.
	 */
	{
		int			nrejected = 0;

		for (int i = 0; i < opt->buyers; i++)
			if (!buyers[i].ordered && strcmp(buyers[i].sqlstate, "SH001") == 0)
				customer_ids[nrejected++] = buyers[i].customer_id;
		free((char *) params[1]);
		params[1] = array_literal(customer_ids, nrejected);
	}
	sql = with_schema("SELECT c.id FROM pg_catalog.unnest($1::bigint[]) AS c(id)"
					  " WHERE NOT EXISTS (SELECT 1 FROM @.cart_items ci"
					  "                     JOIN @.product_stock ps ON ps.product_id = ci.product_id"
					  "                    WHERE ci.customer_id = c.id AND ps.stock < ci.quantity)"
					  " ORDER BY c.id", qschema);
	res = run(conn, sql, 1, params + 1);
	free(sql);
	for (int r = 0; r < PQntuples(res); r++)
		violation("buyer %s was told SH001, but the stock left could serve its cart",
				  PQgetvalue(res, r, 0));
	PQclear(res);

	free((char *) params[0]);
	free((char *) params[1]);
	free(customer_ids);
	return final_stock;
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
	int			nconn, room, orders = 0, rejected = 0, mismatches = 0;
	long long	final_stock;
	double		elapsed;

	parse_options(argc, argv, &opt);

	conn = connect_or_die(opt.conninfo);
	PQsetNoticeProcessor(conn, NULL, NULL);
	qschema = extension_schema(conn);

	/* One connection per buyer by default, within what the server allows */
	room = server_connection_room(conn) - 1;
	nconn = opt.connections ? opt.connections : opt.buyers;
	if (nconn > opt.buyers)
		nconn = opt.buyers;
	if (nconn > room)
	{
		if (opt.connections)
			die(EXIT_SERVER, "the server has room for %d more connections, not --connections=%d; raise max_connections",
				room, opt.connections);
		nconn = room < 1 ? 1 : room;
	}

	product_ids = calloc(opt.products, sizeof(long long));
	sale.opt = &opt;
	sale.nbuyers = opt.buyers;
	sale.buyers = calloc(opt.buyers, sizeof(Buyer));
	set_up_sale(conn, qschema, &opt, product_ids, sale.buyers);
	sale.checkout_sql = with_schema("SELECT @.shop_checkout($1::bigint)", qschema);

	elapsed = run_sale(&sale, nconn);

	final_stock = check_invariants(conn, qschema, &opt, product_ids, sale.buyers);
	for (int i = 0; i < opt.buyers; i++)
	{
		orders += sale.buyers[i].ordered;
		rejected += !sale.buyers[i].ordered &&
			strcmp(sale.buyers[i].sqlstate, "SH001") == 0;
	}
	if (!opt.quiet)
		report(&opt, sale.buyers, final_stock, elapsed, nconn);

	mismatches += expect("successful orders", opt.expect_orders, orders);
	mismatches += expect("SH001 rejections", opt.expect_rejected, rejected);
	mismatches += expect("final stock", opt.expect_stock, final_stock);

	if (violations > 0)
		fprintf(stderr, "%s: %d invariant%s FAILED\n", progname, violations,
				violations == 1 ? "" : "s");
	else if (!opt.quiet)
		printf("🔒 Invariants hold: stock moved = quantity ordered, every order has its lines and its total,\n"
			   "   every buyer has exactly the order it was told of, failed buyers' carts are intact,\n"
			   "   no buyer was told SH001 while the stock left could serve its cart.\n");

	PQfinish(conn);
	return (violations > 0 || mismatches > 0) ? EXIT_INVARIANT : 0;
}
