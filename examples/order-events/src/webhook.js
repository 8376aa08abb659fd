// webhook.js: deliver one order event to the webhook, retrying until it is
// delivered.  Delivered means the webhook answered 2xx; anything else (the
// connection refused or reset, a timeout, a non-2xx answer) is retried with
// exponential backoff, forever: the consumer must not acknowledge a batch
// with an event that was not delivered, and must not skip one either.
import { backoffMs, describeError, log, sleep } from './retry.js';

/**
 * POST event.json (the event's JSON exactly as the database wrote it) to url
 * with the header Idempotency-Key: <event id>; return the attempts it took.
 * The receiver may get the same event more than once (after a crash of the
 * consumer or of the database): it drops a repeat by this key.
 */
export async function deliver(event, { url, timeoutMs, backoff }) {
  for (let attempt = 1; ; attempt++) {
    let reason;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': event.id,
        },
        body: event.json,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer(); // read the answer through, so the connection is reused
      if (res.ok) return attempt;
      reason = `HTTP ${res.status}`;
    } catch (err) {
      reason = err?.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : describeError(err);
    }
    const wait = backoffMs(attempt, backoff);
    log(`event ${event.id} (${event.kind} of order ${event.orderId}): delivery failed (${reason}); ` +
      `attempt ${attempt}, retrying in ${wait} ms`);
    await sleep(wait);
  }
}
