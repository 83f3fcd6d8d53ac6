// CoreWeave (seeds/000): the document's TypeScript middleware and handler, line by line, types
// removed. The secret is read from process.env.COREWEAVE_WEBHOOK_SECRET, as in the document.
"use strict";
const crypto = require("crypto");
const { rawRequest, response, run } = require("./harness.js");

function verifyCoreWeaveSignature(req, res, next) {
const signature = req.headers["x-coreweave-signature"];
const timestamp = req.headers["x-coreweave-timestamp"];
const payload = `${timestamp}.${req.body.toString()}`;
const expected = crypto.createHmac("sha256", process.env.COREWEAVE_WEBHOOK_SECRET)
.update(payload).digest("hex");
if (!crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected))) {
return res.status(401).json({ error: "Invalid signature" });
}
next();
}

let routed = [];
const registerEndpoint = (...a) => routed.push(["instance.ready", ...a]);
const collectArtifacts = (...a) => routed.push(["job.completed", ...a]);
const mountStorage = (...a) => routed.push(["volume.attached", ...a]);
const drainAndReschedule = (...a) => routed.push(["node.unhealthy", ...a]);

function handler(req, res) {
const event = JSON.parse(req.body.toString());
res.status(200).json({ received: true });
switch (event.type) {
case "instance.ready":
registerEndpoint(event.data.instance_id, event.data.gpu_type); break;
case "job.completed":
collectArtifacts(event.data.job_id, event.data.output_path); break;
case "volume.attached":
mountStorage(event.data.volume_id, event.data.node_name); break;
case "node.unhealthy":
drainAndReschedule(event.data.node_id, event.data.reason); break;
}
}

run((item) => {
  process.env.COREWEAVE_WEBHOOK_SECRET = item.secret;
  const req = rawRequest(item);
  const res = response();
  let nexted = false;
  verifyCoreWeaveSignature(req, res, () => { nexted = true; });
  if (!nexted) return `middleware answered ${res.statusCode}`;
  routed = [];
  handler(req, res);
  if (res.statusCode !== 200) return `handler answered ${res.statusCode}`;
  // The document's consumer reads event.type and event.data.
  const ev = JSON.parse(req.body.toString());
  if (typeof ev.id !== "string" || typeof ev.type !== "string" || ev.data === undefined) {
    return "body lacks id, type or data";
  }
  return null;
});
