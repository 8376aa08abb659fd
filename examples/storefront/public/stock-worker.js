// One live-stock stream per browser, shared by every tab of the shop
// (SharedWorker): a browser opens at most 6 connections to a host over
// HTTP/1.1, and a stream per tab would use them up.  The worker keeps the
// current stock, so a tab that connects later gets it at once.
const ports = new Set();
const products = new Map();
let source = null;
let live = false;

function post(message) {
  for (const port of ports) port.postMessage(message);
}

function open() {
  if (source !== null) return;
  source = new EventSource("/api/stock/events");
  source.onopen = () => {
    live = true;
    post({ event: "connection", data: "live" });
  };
  source.onerror = () => {
    live = false;
    post({ event: "connection", data: "reconnecting" });
  };
  for (const event of ["snapshot", "sold_out", "back_in_stock", "stock", "product"]) {
    source.addEventListener(event, (e) => {
      const data = JSON.parse(e.data);
      if (event === "snapshot") {
        products.clear();
        for (const p of data) products.set(p.id, p);
      } else {
        products.set(data.id, data);
      }
      post({ event, data });
    });
  }
}

self.onconnect = (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.onmessage = (m) => {
    if (m.data === "bye") ports.delete(port);
  };
  port.start();
  if (products.size > 0) port.postMessage({ event: "snapshot", data: [...products.values()] });
  if (live) port.postMessage({ event: "connection", data: "live" });
  open();
};
