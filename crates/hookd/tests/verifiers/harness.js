// Shared by the Node verifiers: reads [{secret, headers, body}] as JSON from stdin, hands each item
// to `verify(item)` (which runs a reference document's snippet on an Express-like request) and
// prints one line per item: `ok`, or `fail <why>`. Exits 2 on unusable input.
//
// `rawRequest` is what `express.raw({ type: "application/json" })` gives a handler (the body as a
// Buffer); `jsonRequest` is what `express.json()` gives (the body through JSON.parse).
"use strict";

function headersOf(item) {
  const h = {};
  for (const [k, v] of Object.entries(item.headers)) h[k.toLowerCase()] = v;
  return h;
}

function request(item, body) {
  const headers = headersOf(item);
  return { headers, body, header: (name) => headers[name.toLowerCase()] };
}

exports.rawRequest = (item) => request(item, Buffer.from(item.body, "utf8"));
exports.jsonRequest = (item) => request(item, JSON.parse(item.body));

// A response that remembers its status.
exports.response = () => {
  const res = { statusCode: 200, sent: undefined };
  res.status = (code) => { res.statusCode = code; return res; };
  res.json = (v) => { res.sent = v; return res; };
  res.send = (v) => { res.sent = v; return res; };
  res.end = () => res;
  return res;
};

exports.run = (verify) => {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => { input += c; });
  process.stdin.on("end", () => {
    let items;
    try { items = JSON.parse(input); } catch (e) { console.log(`bad input: ${e}`); process.exit(2); }
    for (const item of items) {
      let line;
      try {
        const why = verify(item);
        line = why ? `fail ${why}` : "ok";
      } catch (e) {
        line = `fail threw ${e && e.message}`;
      }
      console.log(line.replace(/\n/g, " "));
    }
  });
};
