// pgq.js: order events from a PgQ queue (checkout.events = pgq).
//
// The extension inserts each event into the queue (checkout.events_queue,
// default checkout_orders) with ev_type = kind, ev_data = the JSON,
// ev_extra1 = event id, ev_extra2 = order id.  PgQ hands a registered
// consumer its events in batches, one batch between two ticks; a batch stays
// the consumer's current batch, handed out again by every next_batch, until
// finish_batch: so a consumer that dies, or whose database restarts, before
// finishing gets the same batch again (at least once).  Ticks come from the
// ticker (pgqd, or pg_cron running pgq.ticker()), never from the consumer.
import { parseEvent } from './event.js';
import { log } from './retry.js';

export class PgqSource {
  constructor({ queue, consumer }) {
    this.queue = queue;
    this.consumer = consumer;
    this.name = `pgq queue ${queue}, consumer ${consumer}`;
  }

  /** Register the consumer (no change when registered already). */
  async open(client) {
    const { rows } = await client.query('SELECT pgq.register_consumer($1, $2) AS registered',
      [this.queue, this.consumer]);
    if (rows[0].registered === 1) {
      log(`registered consumer ${this.consumer} on queue ${this.queue}: ` +
        'it gets the events from the next tick on');
    }
  }

  /**
   * The next batch ({label, events, ack}), or null when there is none yet
   * (no tick since the last batch).  An empty batch still has to be finished.
   */
  async next(client) {
    const { rows: [{ batch_id: batchId }] } = await client.query(
      'SELECT pgq.next_batch($1, $2) AS batch_id', [this.queue, this.consumer]);
    if (batchId === null) return null;
    const { rows } = await client.query(
      'SELECT ev_id, ev_type, ev_data, ev_extra1 FROM pgq.get_batch_events($1)', [batchId]);
    const events = [];
    for (const row of rows) {
      const event = parseEvent(row.ev_data);
      if (event === null || event.id !== row.ev_extra1) {
        log(`pgq batch ${batchId}: skipped queue event ${row.ev_id} (${row.ev_type}): not an order event`);
        continue;
      }
      events.push(event);
    }
    return {
      label: `pgq batch ${batchId}`,
      events,
      ack: (c) => c.query('SELECT pgq.finish_batch($1)', [batchId]),
    };
  }
}
