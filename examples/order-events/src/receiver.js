// receiver.js: a webhook that receives order events, for the tests and for
// trying the consumer out.  It shows what a receiver of at-least-once
// deliveries must do: record each event once, by its Idempotency-Key (the
// event id), and answer a repeat 200 as well (it was delivered) without
// doing its work again.
//
//   node src/receiver.js [--port 8787] [--host 127.0.0.1] [--log FILE] [--delay-ms N]
//
// POST (any path)  an event: JSON body, header Idempotency-Key.  Answers 200
//                  {"repeat": false|true}; 400 when the body is not an event
//                  or the key is missing or not the body's event id.
// GET /stats       {"deliveries", "events", "repeats", "delay_ms"}
// PUT /delay       body N: wait N ms before answering each event from now
//                  on (to make a batch take a while, in the tests)
//
// With --log, every delivery is appended to FILE as one JSON line before it
// is answered: {"n", "at", "idempotency_key", "event_id", "kind",
// "order_id", "repeat", "event"}.  A receiver started again on the same FILE
// reads it first, so it still knows every event delivered before.  SIGTERM
// or SIGINT stop it after answering the requests in progress.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** A receiver (not yet listening): {server, stats()}. */
export function createReceiver({ logFile = null, delayMs = 0 } = {}) {
  const seen = new Set();
  let deliveries = 0;
  let repeats = 0;
  if (logFile !== null && existsSync(logFile)) {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (line === '') continue;
      const record = JSON.parse(line);
      deliveries++;
      if (record.repeat) repeats++;
      seen.add(record.idempotency_key);
    }
  }
  const stats = () => ({ deliveries, events: seen.size, repeats, delay_ms: delayMs });

  const server = http.createServer(async (req, res) => {
    const answer = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString('utf8');

    if (req.method === 'GET' && req.url === '/stats') return answer(200, stats());
    if (req.method === 'PUT' && req.url === '/delay') {
      const ms = Number(body);
      if (!Number.isSafeInteger(ms) || ms < 0) return answer(400, { error: 'body must be a number of ms' });
      delayMs = ms;
      return answer(200, stats());
    }
    if (req.method !== 'POST') return answer(405, { error: 'POST an event' });

    let event;
    try {
      event = JSON.parse(body);
    } catch {
      return answer(400, { error: 'body is not JSON' });
    }
    const key = req.headers['idempotency-key'];
    if (key === undefined || key !== String(event?.event_id)) {
      return answer(400, { error: 'Idempotency-Key must be the event_id of the body' });
    }
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));

    // The receiver's work, once per event; a repeat is answered 200 too
    const repeat = seen.has(key);
    seen.add(key);
    deliveries++;
    if (repeat) repeats++;
    if (logFile !== null) {
      appendFileSync(logFile, `${JSON.stringify({
        n: deliveries, at: new Date().toISOString(), idempotency_key: key,
        event_id: event.event_id, kind: event.kind, order_id: event.order_id, repeat, event,
      })}\n`);
    }
    return answer(200, { repeat });
  });
  return { server, stats };
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      log: { type: 'string' },
      'delay-ms': { type: 'string', default: '0' },
    },
  });
  const { server, stats } = createReceiver({ logFile: values.log ?? null, delayMs: Number(values['delay-ms']) });
  server.listen(Number(values.port), values.host, () => {
    const { events, repeats } = stats();
    process.stdout.write(`receiver listening on http://${values.host}:${values.port}/ ` +
      `(${events} events and ${repeats} repeats received before)\n`);
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      // no new connection; idle ones closed now, busy ones once answered
      server.close(() => process.exit(0));
      server.closeIdleConnections();
      setInterval(() => server.closeIdleConnections(), 50).unref();
    });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
