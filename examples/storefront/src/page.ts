// The page as the server renders it: every product with the stock of now
// (a bundle with its parts), so that a sold-out product's button is
// disabled in the first paint, before any script runs (and for a shopper
// without JavaScript).  The script (public/app.js) takes over from the
// snapshot embedded here.
import type { ProductView } from "./stock.js";

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

export const stockText = (p: ProductView) =>
  p.soldOut ? "Sold out" : p.low ? `Only ${p.stock} left` : "In stock";

const price = (cents: number) => `$${(cents / 100).toFixed(2)}`;

/** What a bundle holds: "Bundle: Phone Case + 2 × Gift Wrap" */
export const partsText = (p: ProductView) =>
  `Bundle: ${(p.parts ?? []).map((b) => (b.quantity === 1 ? b.name : `${b.quantity} × ${b.name}`)).join(" + ")}`;

function product(p: ProductView): string {
  // a bundle says what is in it; its stock is what its parts make (product_stock)
  const parts = p.parts ? `\n  <p class="parts" id="parts-${p.id}">${escape(partsText(p))}</p>` : "";
  const describedBy = p.parts ? `name-${p.id} parts-${p.id} stock-${p.id}` : `name-${p.id} stock-${p.id}`;
  return `<li class="product${p.parts ? " bundle" : ""}${p.soldOut ? " sold-out" : ""}" id="product-${p.id}" data-id="${p.id}">
  <h2 id="name-${p.id}">${escape(p.name)}</h2>${parts}
  <p class="price">${price(p.priceCents)}</p>
  <p class="stock" id="stock-${p.id}" aria-live="polite">${stockText(p)}</p>
  <button type="button" class="buy" data-id="${p.id}" aria-describedby="${describedBy}"${p.soldOut ? " disabled" : ""}>${p.soldOut ? "Sold out" : "Buy now"}</button>
  <p class="outcome" id="outcome-${p.id}" role="status" aria-live="polite"></p>
</li>`;
}

export function renderPage(products: ProductView[], customerId: number, lowStock: number): string {
  // the snapshot for the script: JSON inside <script>, "<" escaped
  const snapshot = JSON.stringify({ products, lowStock }).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flash sale</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/style.css">
</head>
<body data-customer="${customerId}">
<header>
  <h1>Flash sale</h1>
  <p id="live" class="live" role="status" aria-live="polite">Connecting to live stock…</p>
</header>
<main>
<ul class="products">
${products.map(product).join("\n")}
</ul>
</main>
<script id="snapshot" type="application/json">${snapshot}</script>
<script src="/app.js" type="module"></script>
</body>
</html>
`;
}
