// gpu.ai (seeds/001): the document's Express handler, line by line, inside a factory so each item
// has its own SECRET (the document reads it from process.env.GPUAI_WEBHOOK_SECRET once).
"use strict";
const crypto = require("node:crypto");
const { rawRequest, response, run } = require("./harness.js");

function makeHandler(SECRET) {
return (req, res) => {
  const header = req.header("Gpuai-Signature") ?? "";
  const parts = Object.fromEntries(
    header.split(",").map((kv) => kv.split("=")),
  );
  const t = Number(parts.t);
  const v1 = parts.v1;

  // 1. Replay protection: timestamp must be within ±5 minutes.
  if (Math.abs(Date.now() / 1000 - t) > 300) {
    return res.status(400).send("stale signature");
  }

  // 2. Recompute and compare in constant time.
  const expected = crypto
    .createHmac("sha256", SECRET)
    .update(`${t}.${req.body}`)
    .digest("hex");
  if (
    !crypto.timingSafeEqual(
      Buffer.from(v1, "hex"),
      Buffer.from(expected, "hex"),
    )
  ) {
    return res.status(400).send("bad signature");
  }

  // 3. Process the event.
  const event = JSON.parse(req.body.toString());
  processed.push([event.type, event.data, req.header("Gpuai-Event-Id"), event.id]);
  res.status(204).end();
};
}

let processed = [];

run((item) => {
  const req = rawRequest(item);
  const res = response();
  processed = [];
  makeHandler(item.secret)(req, res);
  if (res.statusCode !== 204) return `answered ${res.statusCode} ${res.sent}`;
  const [type, data, eventIdHeader, id] = processed[0];
  if (typeof type !== "string" || data === undefined) return "body lacks type or data";
  if (eventIdHeader !== id) return `Gpuai-Event-Id ${eventIdHeader} is not the event id ${id}`;
  return null;
});
