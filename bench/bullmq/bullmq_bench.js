// bench/bullmq/bullmq_bench.js PORT N [CONCURRENCY]: the BullMQ reference for
// bench/scheduler.sh. Adds N delayed jobs all due at the same instant T, one Worker
// fires them, and prints one JSON line: fire rate (jobs per second from T until the
// last job was taken, from processedOn) and lateness (processedOn - (timestamp +
// delay)): avg, p50, p99, max in ms. Its Redis is the one the scheduler uses.
'use strict';
const { Queue, Worker } = require('bullmq');

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 50000);
const concurrency = Number(process.argv[4] || 100);
const connection = { host: '127.0.0.1', port };
const name = `leadflow-bench-${process.pid}`;

async function main() {
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  // Enough time to add every job before T (bulk adds of delayed jobs ran at about
  // 5,000 jobs/s on the 2-core machine); a late T is reported on stderr.
  const T = Date.now() + 3000 + Math.ceil(n * 0.35);
  for (let i = 0; i < n; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      jobs.push({ name: 't', data: { i: j },
                  opts: { delay: Math.max(0, T - Date.now()), removeOnComplete: true } });
    await queue.addBulk(jobs);
  }
  const addedBy = Date.now();
  if (addedBy >= T) console.error(`bullmq: adding took past T by ${addedBy - T} ms`);
  const late = new Float64Array(n);
  let taken = 0, lastTaken = 0, lastDone = 0;
  let resolveAll;
  const all = new Promise((r) => { resolveAll = r; });
  const worker = new Worker(name, async (job) => {
    const taken_at = job.processedOn || Date.now();
    late[taken] = taken_at - (job.timestamp + (job.opts.delay || 0));
    taken++;
    if (taken_at > lastTaken) lastTaken = taken_at;
  }, { connection, concurrency, autorun: true });
  worker.on('completed', () => {
    lastDone = Date.now();
    if (--remaining === 0) resolveAll();
  });
  let remaining = n;
  await all;
  late.sort();
  const q = (p) => late[Math.min(n - 1, Math.ceil(p * n) - 1)];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += late[i];
  const out = {
    n, concurrency,
    fire_rate: n / Math.max(0.001, (lastTaken - T) / 1000),
    done_rate: n / Math.max(0.001, (lastDone - T) / 1000),
    avg_ms: sum / n, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: late[n - 1],
  };
  console.log(JSON.stringify(out));
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
