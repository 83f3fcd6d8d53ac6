// Cortex (seeds/003): the document's verifySignature, line by line. The document shows no handler;
// this one passes it what Express's JSON parser gives (the parsed body), as its `payload` and
// its `JSON.stringify(payload)` imply.
"use strict";
const crypto = require('crypto');
const { jsonRequest, run } = require("./harness.js");

function verifySignature(payload, signature, secret) {
  // Extract timestamp and signature value
  const [timestamp, signatureValue] = signature.replace('t=', '').replace('v1=', '').split(',');

  // Create the signature
  const hmac = crypto.createHmac('sha256', secret);
  const expectedSignature = hmac.update(`${timestamp}.${JSON.stringify(payload)}`).digest('hex');

  // Compare signatures using constant-time comparison
  return crypto.timingSafeEqual(Buffer.from(signatureValue), Buffer.from(expectedSignature));
}

run((item) => {
  const req = jsonRequest(item);
  if (!verifySignature(req.body, req.headers['x-cortex-signature'], item.secret)) {
    return "signature mismatch";
  }
  const ev = req.body;
  if (typeof ev.id !== "string" || typeof ev.type !== "string" || typeof ev.createdAt !== "string" || ev.data === undefined) {
    return "body lacks id, type, createdAt or data";
  }
  return null;
});
