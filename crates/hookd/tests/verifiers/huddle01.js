// Huddle01 (seeds/002): the document's Node.js verifier and handler, line by line. The handler
// gets the body as Express's JSON parser gives it, and verifies JSON.stringify(req.body).
"use strict";
const crypto = require('crypto');
const { jsonRequest, response, run } = require("./harness.js");

function verifyWebhook(payload, signature, secret) {
  const expected = crypto
    .createHmac('sha256', secret)
    .update(payload, 'utf8')
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}

let seen = [];

// In your webhook handler
const handler = (req, res) => {
  const signature = req.headers['x-webhook-signature'];
  const isValid = verifyWebhook(
    JSON.stringify(req.body),
    signature,
    process.env.WEBHOOK_SECRET
  );

  if (!isValid) {
    return res.status(401).send('Invalid signature');
  }

  // Process the event
  seen.push(req.body.event);
  res.status(200).send('OK');
};

run((item) => {
  process.env.WEBHOOK_SECRET = item.secret;
  const req = jsonRequest(item);
  const res = response();
  seen = [];
  handler(req, res);
  if (res.statusCode !== 200) return `answered ${res.statusCode} ${res.sent}`;
  if (typeof seen[0] !== "string") return "body has no event";
  return null;
});
