// The SQS side of the stack test (TestStackEndToEnd), in one node process
// inside a container: local-aws-sqs on :9324 with the work and results
// queues (each with a dead-letter queue), and on :9325 the relay that turns
// MinIO's webhook notifications into S3-event messages, as S3 → SQS does on
// AWS (/work → work queue, /results → results queue).
//
// local-aws-sqs is patched the way pkg/awstest patches it (sqsPatches): a
// heartbeat does not count as a receive, ApproximateNumberOfMessages counts
// visible messages only, a long poll returns at the first message.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");

const dist = path.join(process.env.SQS_MODULES, "local-aws-sqs", "dist");
const patches = [
  ["if(r.length==e){clearInterval(c),clearTimeout(n),o();break}}},10)",
   "if(r.length==e)break}r.length&&(clearInterval(c),clearTimeout(n),o())},10)"],
  ["let n=Number(t.record.attributes.ApproximateReceiveCount)+1;",
   "let n=Number(t.record.attributes.ApproximateReceiveCount)+(i?0:1);"],
  ["ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed).length)",
   "ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed&&o.visible).length)"],
];
let src = fs.readFileSync(path.join(dist, "index.js"), "utf8");
for (const [from, to] of patches) {
  if (src.split(from).length !== 2) throw new Error("local-aws-sqs patch does not apply: " + from);
  src = src.replace(from, to);
}
// Written next to index.js so that its relative requires resolve; the
// module directory is mounted read-only, so a copy of dist goes to /tmp.
const copy = "/tmp/local-aws-sqs-dist";
fs.cpSync(dist, copy, { recursive: true });
fs.writeFileSync(path.join(copy, "index.patched.js"), src);
module.paths.push(process.env.SQS_MODULES);
const { createSqsServer } = require(path.join(copy, "index.patched.js"));

const endpoint = "http://127.0.0.1:9324";
async function sqs(action, body) {
  const res = await fetch(endpoint + "/", {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS." + action },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(action + ": " + res.status + " " + text);
  return text ? JSON.parse(text) : {};
}

async function queuePair(name, visibility, maxReceive) {
  const dlq = await sqs("CreateQueue", { QueueName: name + "-dlq" });
  const attrs = await sqs("GetQueueAttributes", { QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] });
  const q = await sqs("CreateQueue", {
    QueueName: name,
    Attributes: {
      VisibilityTimeout: String(visibility),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: attrs.Attributes.QueueArn, maxReceiveCount: String(maxReceive) }),
    },
  });
  return q.QueueUrl;
}

async function main() {
  await createSqsServer({ port: 9324, hostname: "0.0.0.0", emulateQueueCreationLifecycle: false });
  const routes = {
    "/work": await queuePair("work", 60, 5),
    "/results": await queuePair("results", 60, 5),
  };
  http.createServer((req, res) => {
    if (req.method !== "POST") { res.end(); return; } // MinIO probes the endpoint
    const url = routes[req.url];
    if (!url) { res.statusCode = 404; res.end("no route"); return; }
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", async () => {
      try {
        const records = JSON.parse(body).Records || [];
        if (records.length) {
          // S3 puts only {"Records": …} on the queue.
          await sqs("SendMessage", { QueueUrl: url, MessageBody: JSON.stringify({ Records: records }) });
        }
        res.end();
      } catch (e) {
        // 502: MinIO keeps the event in its queue dir and retries.
        res.statusCode = 502;
        res.end(String(e));
      }
    });
  }).listen(9325, "0.0.0.0", () => console.log("sqs-peer: ready", JSON.stringify(routes)));
}
main().catch((e) => { console.error(e); process.exit(1); });
process.on("SIGTERM", () => process.exit(0));
