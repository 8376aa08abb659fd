// The storefront page: live stock, a buy button that knows, and a retry
// queue that cannot double-order.
//
// Stock: the server rendered the page with the stock of now (a sold-out
// button is disabled before this script runs); from then on one stream per
// browser (stock-worker.js, a SharedWorker) tells every tab what changed.
//
// A checkout: one Idempotency-Key per logical checkout, made once and kept
// in sessionStorage, so that a second click, a retry or a reload sends the
// same key and gets the same order.  The tabs of one browser agree on it
// under a Web Lock: a tab that buys what another tab of this shopper is
// buying right now (or bought within the last seconds, unseen by it)
// adopts that checkout's key instead of making its own, so four tabs
// clicking at once place one order and all show it.
//
// Retry queue: a 503 (the server says retry: Retry-After) or a network
// error is retried with the same key, jittered exponential backoff, at
// most 5 tries in all, its state shown; an insufficient-stock answer is
// never retried; a sold-out event cancels a queued retry (after a network
// error one confirming try goes first: that request may have placed the
// order, and the key tells).

const TRIES = 5;
const ADOPT_MS = 10000;
const customer = document.body.dataset.customer;
const initial = JSON.parse(document.getElementById("snapshot").textContent);
const lowStock = initial.lowStock;
const products = new Map(initial.products.map((p) => [p.id, p]));
const checkouts = new Map(); // product id -> the checkout running in this tab
const seenOrders = new Set(JSON.parse(sessionStorage.getItem("seenOrders") ?? "[]"));

// ---------------------------------------------------------------- stock

const $ = (id) => document.getElementById(id);

function stockText(p) {
  return p.stock <= 0 ? "Sold out" : p.stock <= lowStock ? `Only ${p.stock} left` : "In stock";
}

function render(p) {
  const li = $(`product-${p.id}`);
  if (li === null) return;
  const soldOut = p.stock <= 0;
  li.classList.toggle("sold-out", soldOut);
  const stock = $(`stock-${p.id}`);
  const text = stockText(p);
  if (stock.textContent !== text) stock.textContent = text;
  stock.classList.toggle("low", !soldOut && p.stock <= lowStock);
  const button = li.querySelector("button.buy");
  const running = checkouts.get(p.id);
  button.disabled = soldOut || (running !== undefined && !running.settled);
  if (running === undefined || running.settled) {
    button.textContent = soldOut ? "Sold out" : running?.failedRetryable ? "Try again" : "Buy now";
  }
  if (soldOut && !li.dataset.soldOutAt) li.dataset.soldOutAt = String(Date.now());
  if (!soldOut) delete li.dataset.soldOutAt;
}

function onStock(event, data) {
  if (event === "connection") {
    const live = $("live");
    live.textContent = data === "live" ? "Live stock" : "Reconnecting to live stock…";
    live.classList.toggle("down", data !== "live");
    return;
  }
  const list = event === "snapshot" ? data : [data];
  for (const p of list) {
    const known = products.get(p.id);
    if (known === undefined) continue; // a product added since the page was made: on the next load
    known.stock = p.stock;
    render(known);
    if (p.stock <= 0) checkouts.get(p.id)?.soldOut();
  }
}

function connectStock() {
  if (typeof SharedWorker === "function") {
    const worker = new SharedWorker("/stock-worker.js", { name: "checkout-stock" });
    worker.port.onmessage = (e) => onStock(e.data.event, e.data.data);
    worker.port.start();
    addEventListener("pagehide", () => worker.port.postMessage("bye"));
  } else {
    // no SharedWorker (some mobile browsers): a stream of this tab's own
    const source = new EventSource("/api/stock/events");
    source.onopen = () => onStock("connection", "live");
    source.onerror = () => onStock("connection", "reconnecting");
    for (const event of ["snapshot", "sold_out", "back_in_stock", "stock", "product"]) {
      source.addEventListener(event, (e) => onStock(event, JSON.parse(e.data)));
    }
  }
}

// ------------------------------------------------------------ checkouts

const signature = (lines) =>
  lines
    .map((l) => `${l.productId}x${l.quantity}`)
    .sort()
    .join(",");
const sharedName = (sig) => `checkout:${customer}:${sig}`;
const tabName = (sig) => `attempt:${customer}:${sig}`;
const readJSON = (storage, name) => {
  try {
    return JSON.parse(storage.getItem(name) ?? "null");
  } catch {
    return null;
  }
};

/**
 * The key of the logical checkout of these lines: this tab's own (a
 * second click, a retry, a reload), another tab's that is running or
 * just done and unseen here, or a new one.  Under a Web Lock, so that
 * tabs clicking at once agree.
 */
async function claimKey(lines) {
  const sig = signature(lines);
  const claim = () => {
    const mine = readJSON(sessionStorage, tabName(sig));
    const shared = readJSON(localStorage, sharedName(sig));
    let key;
    if (mine !== null) key = mine.key;
    else if (
      shared !== null &&
      Date.now() - shared.at < ADOPT_MS &&
      (shared.state === "running" || (shared.state === "done" && !seenOrders.has(shared.orderId)))
    )
      key = shared.key;
    else key = crypto.randomUUID();
    sessionStorage.setItem(tabName(sig), JSON.stringify({ key, lines }));
    if (shared?.key !== key || shared.state !== "done") {
      localStorage.setItem(sharedName(sig), JSON.stringify({ key, state: "running", at: Date.now() }));
    }
    return key;
  };
  return navigator.locks ? navigator.locks.request(sharedName(sig), claim) : claim();
}

function showOutcome(productId, text, kind) {
  const outcome = $(`outcome-${productId}`);
  outcome.textContent = text;
  outcome.className = `outcome ${kind}`;
}

function showOrder(productId, order, note = "") {
  seenOrders.add(order.id);
  sessionStorage.setItem("seenOrders", JSON.stringify([...seenOrders]));
  const li = $(`product-${productId}`);
  li.dataset.orderId = String(order.id);
  showOutcome(productId, `Order #${order.id} placed${note}: $${(order.totalCents / 100).toFixed(2)}.`, "ok");
}

class Checkout {
  constructor(productId, lines, key) {
    this.productId = productId;
    this.lines = lines;
    this.key = key;
    this.sig = signature(lines);
    this.settled = false;
    this.failedRetryable = false;
    this.tries = 0;
    this.wake = null; // resolves the backoff wait early
    this.lastUnknown = false; // the last failure may have placed the order
    this.cancelled = false;
  }

  async run() {
    render(products.get(this.productId));
    for (;;) {
      this.tries++;
      $(`product-${this.productId}`).dataset.tries = String(this.tries);
      showOutcome(
        this.productId,
        this.tries === 1 ? "Placing your order…" : `Placing your order… (try ${this.tries} of ${TRIES})`,
        "wait",
      );
      const answer = await this.send();
      if (answer.final) return this.finish(answer);
      if (this.cancelled || this.tries >= TRIES) {
        return this.finish({
          final: true,
          retryable: !this.cancelled,
          text: this.cancelled
            ? "Sold out while we were retrying: nothing was ordered."
            : `${answer.message} Nothing was charged: press "Try again" to retry this checkout.`,
        });
      }
      const delay = Math.max(answer.retryAfterMs, 250 * 2 ** (this.tries - 1)) * (0.5 + Math.random());
      showOutcome(
        this.productId,
        `${answer.message} Retrying in ${(delay / 1000).toFixed(1)} s (try ${this.tries + 1} of ${TRIES}).`,
        "wait",
      );
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, delay);
      });
      this.wake = null;
      if (this.cancelled && !this.lastUnknown) {
        return this.finish({ final: true, text: "Sold out while we were retrying: nothing was ordered." });
      }
      if (this.cancelled) this.tries = TRIES - 1; // one confirming try, then stop
    }
  }

  /** One request: {final, order?, text?} or a retryable {message, retryAfterMs} */
  async send() {
    let res;
    try {
      res = await fetch("/api/checkout", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": this.key },
        body: JSON.stringify({ lines: this.lines }),
      });
    } catch {
      this.lastUnknown = true;
      return { final: false, message: "We could not reach the shop.", retryAfterMs: 0 };
    }
    let body = {};
    try {
      body = await res.json();
    } catch {
      // a proxy's page, not ours: keep the status
    }
    if (res.status === 201 || res.status === 200) {
      return { final: true, order: body.order, replayed: res.headers.get("idempotent-replayed") === "true" };
    }
    if (res.status === 503 || res.status === 502 || res.status === 504) {
      this.lastUnknown = body.maybePlaced === true || res.status !== 503;
      const retryAfter = Number(res.headers.get("retry-after") ?? "1");
      return {
        final: false,
        message: body.message ?? "The shop is very busy.",
        retryAfterMs: (Number.isFinite(retryAfter) ? retryAfter : 1) * 1000,
      };
    }
    return { final: true, text: body.message ?? `The shop answered ${res.status}.` };
  }

  finish(answer) {
    this.settled = true;
    this.failedRetryable = answer.retryable === true;
    if (!this.failedRetryable) sessionStorage.removeItem(tabName(this.sig));
    if (answer.order) {
      localStorage.setItem(
        sharedName(this.sig),
        JSON.stringify({ key: this.key, state: "done", orderId: answer.order.id, order: answer.order, at: Date.now() }),
      );
      showOrder(this.productId, answer.order);
    } else {
      if (!this.failedRetryable) localStorage.removeItem(sharedName(this.sig));
      showOutcome(this.productId, answer.text, "error");
    }
    render(products.get(this.productId));
    $(`product-${this.productId}`).querySelector("button.buy").focus();
  }

  /** The product sold out: a queued retry is cancelled (after one confirming try if needed) */
  soldOut() {
    if (this.settled || this.cancelled) return;
    this.cancelled = true;
    this.wake?.();
  }
}

async function buy(productId) {
  const running = checkouts.get(productId);
  if (running !== undefined && !running.settled) return;
  const lines = [{ productId, quantity: 1 }];
  const key = await claimKey(lines);
  const checkout = new Checkout(productId, lines, key);
  checkouts.set(productId, checkout);
  await checkout.run();
}

// another tab of this shopper placed an order: show it here too
addEventListener("storage", (e) => {
  if (e.key === null || !e.key.startsWith(`checkout:${customer}:`) || e.newValue === null) return;
  const record = readJSON(localStorage, e.key);
  if (record?.state !== "done" || !record.order) return;
  const productId = record.order.lines?.[0]?.productId;
  if (productId === undefined || $(`product-${productId}`) === null) return;
  const running = checkouts.get(productId);
  if (running !== undefined && !running.settled && running.key !== record.key) return;
  if (!seenOrders.has(record.orderId)) showOrder(productId, record.order, " (in another tab)");
});

document.querySelector(".products").addEventListener("click", (e) => {
  const button = e.target.closest("button.buy");
  if (button !== null && !button.disabled) buy(Number(button.dataset.id));
});

for (const p of products.values()) render(p);
connectStock();

// a checkout this tab started and never saw the end of (a reload mid-way):
// finish it with its key, which returns its order if it was placed
for (let i = 0; i < sessionStorage.length; i++) {
  const name = sessionStorage.key(i);
  if (!name.startsWith(`attempt:${customer}:`)) continue;
  const attempt = readJSON(sessionStorage, name);
  const productId = attempt?.lines?.[0]?.productId;
  if (productId === undefined || !products.has(productId)) continue;
  const checkout = new Checkout(productId, attempt.lines, attempt.key);
  checkouts.set(productId, checkout);
  checkout.run();
}
