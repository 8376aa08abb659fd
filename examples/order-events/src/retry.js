// retry.js: waiting between attempts, and the consumer's log line format.
// Nothing here knows PostgreSQL or HTTP.

/** Resolve after ms milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Exponential backoff: attempt 1 waits initialMs, each next one twice as long,
 * never more than maxMs; with up to 20% less at random so that many
 * consumers restarted together do not retry in lockstep.
 */
export function backoffMs(attempt, { initialMs = 100, maxMs = 2000 } = {}) {
  const ms = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ms * (1 - Math.random() * 0.2));
}

/** "1 event", "2 events"; "1 retry", "2 retries" with nouns given */
export const plural = (n, noun, nouns = `${noun}s`) => `${n} ${n === 1 ? noun : nouns}`;

/** One log line, on stdout, with the time first. */
export function log(message) {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

/** The shortest useful text of an error: its code (ECONNREFUSED, 57P01) and message. */
export function describeError(err) {
  const cause = err?.cause;
  const code = err?.code ?? cause?.code;
  const message = cause?.message ?? err?.message ?? String(err);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}
