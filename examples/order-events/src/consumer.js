// consumer.js: deliver the checkout extension's order events to a webhook.
//
//   DATABASE_URL=postgresql://... WEBHOOK_URL=http://... \
//     node src/consumer.js --source pgq|logical [options]
//
// The loop: take the next batch from the source (a PgQ batch, or the
// transactions one peek at a replication slot returns), deliver its events
// one at a time in event id order (each retried until the webhook answers
// 2xx), then acknowledge the batch; one log line per batch.  Nothing is
// acknowledged before all of it was delivered, so every event is delivered
// at least once; a repeat (after the consumer or the database died between
// delivering and acknowledging) carries the same Idempotency-Key, the event
// id, and the receiver drops it.
//
// When the database goes away (restart, crash, network), the consumer
// reconnects with backoff and carries on from the last acknowledged batch;
// it never exits on its own.  SIGINT or SIGTERM stop it at once: what it
// delivered and did not acknowledge comes again on the next start.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { sortById } from './event.js';
import { LogicalSource } from './logical.js';
import { PgqSource } from './pgq.js';
import { backoffMs, describeError, log, plural, sleep } from './retry.js';
import { deliver } from './webhook.js';

const USAGE = `Usage: node src/consumer.js --source pgq|logical [options]

Delivers the checkout extension's order events to WEBHOOK_URL (POST, JSON
body, header Idempotency-Key: <event id>), at least once, in event id order
within each batch.  Environment: DATABASE_URL (else libpq's PG* variables),
WEBHOOK_URL (required).

  --source pgq|logical   where the events are (checkout.events of the shop)
  --queue NAME           pgq: the queue (default checkout_orders)
  --consumer NAME        pgq: this consumer's name (default order_events_webhook)
  --slot NAME            logical: the replication slot (default checkout_events)
  --publication NAME     logical: the empty publication (default checkout_events)
  --max-changes N        logical: messages per peek, about (default 1000)
  --poll-ms N            wait when there is no batch (default 500)
  --timeout-ms N         a delivery with no answer in N ms is retried (default 5000)
  --max-backoff-ms N     retries wait 100 ms, 200 ms, ... up to N (default 2000)
  -h, --help             show this help`;

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        source: { type: 'string' },
        queue: { type: 'string', default: 'checkout_orders' },
        consumer: { type: 'string', default: 'order_events_webhook' },
        slot: { type: 'string', default: 'checkout_events' },
        publication: { type: 'string', default: 'checkout_events' },
        'max-changes': { type: 'string', default: '1000' },
        'poll-ms': { type: 'string', default: '500' },
        'timeout-ms': { type: 'string', default: '5000' },
        'max-backoff-ms': { type: 'string', default: '2000' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    fail(err.message);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (parsed.source !== 'pgq' && parsed.source !== 'logical') fail('--source must be pgq or logical');
  if (!process.env.WEBHOOK_URL) fail('WEBHOOK_URL is not set');
  const number = (name) => {
    const value = Number(parsed[name]);
    if (!Number.isSafeInteger(value) || value <= 0) fail(`--${name} must be a positive whole number`);
    return value;
  };
  return {
    source: parsed.source === 'pgq'
      ? new PgqSource({ queue: parsed.queue, consumer: parsed.consumer })
      : new LogicalSource({ slot: parsed.slot, publication: parsed.publication,
        maxChanges: number('max-changes') }),
    databaseUrl: process.env.DATABASE_URL,
    webhook: {
      url: process.env.WEBHOOK_URL,
      timeoutMs: number('timeout-ms'),
      backoff: { initialMs: 100, maxMs: number('max-backoff-ms') },
    },
    pollMs: number('poll-ms'),
    backoff: { initialMs: 100, maxMs: number('max-backoff-ms') },
  };
}

function fail(message) {
  process.stderr.write(`order-events: ${message}\n${USAGE}\n`);
  process.exit(1);
}

/** A new connection; a connection error between queries is logged, and the next query fails. */
async function connect(databaseUrl) {
  const client = new pg.Client({
    connectionString: databaseUrl,
    application_name: 'order-events',
    keepAlive: true,
    connectionTimeoutMillis: 10000,
    query_timeout: 60000,
  });
  client.on('error', (err) => log(`database connection lost: ${describeError(err)}`));
  try {
    await client.connect();
  } catch (err) {
    client.end().catch(() => {});
    throw err;
  }
  return client;
}

/** Deliver every event of the batch, in event id order; return what the log line says of it. */
async function deliverBatch(batch, webhook) {
  const started = Date.now();
  const kinds = new Map();
  let retries = 0;
  for (const event of sortById(batch.events)) {
    retries += (await deliver(event, webhook)) - 1;
    kinds.set(event.kind, (kinds.get(event.kind) ?? 0) + 1);
  }
  const events = batch.events;
  const ids = events.length === 1 ? `id ${events[0].id}` : `ids ${events[0].id}..${events[events.length - 1].id}`;
  const byKind = [...kinds].map(([kind, n]) => `${n} ${kind}`).join(', ');
  return `${plural(events.length, 'event')} (${ids}: ${byKind}) delivered in ` +
    `${((Date.now() - started) / 1000).toFixed(2)} s` + (retries > 0 ? ` after ${plural(retries, 'retry', 'retries')}` : '');
}

/** Take, deliver, acknowledge; reconnect whenever the database fails.  Never returns. */
async function run({ source, databaseUrl, webhook, pollMs, backoff }) {
  log(`order events from ${source.name} to ${webhook.url}`);
  let failures = 0;
  for (;;) {
    let client = null;
    try {
      client = await connect(databaseUrl);
      await source.open(client);
      log(failures > 0 ? `database connected again after ${plural(failures, 'failed attempt')}` : 'database connected');
      failures = 0;
      for (;;) {
        const batch = await source.next(client);
        if (batch === null) {
          await sleep(pollMs);
          continue;
        }
        if (batch.events.length === 0) {
          await batch.ack(client); // a tick or transactions with no order event: nothing to say
          continue;
        }
        const delivered = await deliverBatch(batch, webhook);
        await batch.ack(client);
        log(`${batch.label}: ${delivered}; acknowledged`);
      }
    } catch (err) {
      failures++;
      const wait = backoffMs(failures, backoff);
      log(`database: ${describeError(err)}; connecting again in ${wait} ms (attempt ${failures})`);
      client?.end().catch(() => {});
      await sleep(wait);
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    log(`${signal}: stopping; what was delivered and not acknowledged comes again on the next start`);
    process.exit(0);
  });
}
run(options());
