'use strict';
// Nacos 2.x naming clients written on @grpc/grpc-js, driven by
// grpcjs_test.go: it runs a client's life against a sextant server (and a
// second connection's, which registers the instance the first one sees
// pushed) and asserts every answer on the way.
//
//   node client.js <grpc host:port> <nacos_grpc_service.proto> <service name>
//
// Every step that passes prints one JSON line on stdout:
// {"step": "...", "ms": <since start>, ...details}. Before closing, the script
// prints the step "awaitClose" and waits for a line on stdin, so that the Go
// test can look at the server while the client is still connected. A failed
// step prints "FAIL <step>: <why>" on stderr and exits with status 1.
//
// The modules are found through NODE_PATH: the Go test installs them outside
// the repository.

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const readline = require('node:readline');

const [addr, protoPath, serviceName] = process.argv.slice(2);
if (!addr || !protoPath || !serviceName) {
  process.stderr.write('usage: node client.js <grpc host:port> <proto file> <service name>\n');
  process.exit(2);
}

const NAMESPACE = 'public';
const GROUP = 'DEFAULT_GROUP';
const CALL_TIMEOUT_MS = 10000; // a unary call's deadline
const AWAIT_TIMEOUT_MS = 10000; // the longest wait for a push or a state
const CONCURRENT_CALLS = 50;
const BATCH_SIZE = 300; // instances registered in one BatchInstanceRequest
const BLOB = 'x'.repeat(512); // metadata of each batched instance
const H2_INITIAL_WINDOW = 65535; // HTTP/2's initial flow-control window

const started = Date.now();
let step = 'start';

class StepError extends Error {}

function fail(why) {
  throw new StepError(why);
}

function check(cond, why) {
  if (!cond) fail(typeof why === 'function' ? why() : why);
}

function report(details) {
  process.stdout.write(JSON.stringify({ step, ms: Date.now() - started, ...details }) + '\n');
}

function log(msg) {
  process.stderr.write(`[grpc-js client ${Date.now() - started}ms] ${msg}\n`);
}

// --- the wire --------------------------------------------------------------

const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(def);

let lastID = 0; // requestIds, unique in the process

function payload(type, body) {
  return {
    metadata: { type, clientIp: '127.0.0.1', headers: {} },
    // Nacos puts the JSON document in Any.value and leaves type_url empty.
    body: { type_url: '', value: Buffer.from(JSON.stringify(body), 'utf8') },
  };
}

function decode(p) {
  const type = p && p.metadata ? p.metadata.type : '';
  const raw = p && p.body && p.body.value ? Buffer.from(p.body.value) : Buffer.alloc(0);
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    fail(`${type} body is not JSON (${e.message}): ${raw.toString('utf8').slice(0, 200)}`);
  }
  return { type, body, size: raw.length };
}

function svc(name, extra) {
  return { namespace: NAMESPACE, groupName: GROUP, serviceName: name, ...extra };
}

function instance(ip, port, metadata = {}) {
  return { ip, port, weight: 1.0, healthy: true, enabled: true, ephemeral: true, clusterName: 'DEFAULT', metadata };
}

function addrs(info) {
  return (info.hosts || []).map((h) => `${h.ip}:${h.port}`).sort();
}

function sameAddrs(info, want) {
  const got = addrs(info);
  const w = [...want].sort();
  return got.length === w.length && got.every((a, i) => a === w[i]);
}

function serviceInfo(r, name) {
  const info = r.body.serviceInfo;
  check(info && Array.isArray(info.hosts), () => `${r.type} has no serviceInfo with a hosts list: ${JSON.stringify(r.body).slice(0, 500)}`);
  check(info.name === name && info.groupName === GROUP,
    () => `${r.type} serviceInfo names ${info.groupName}/${info.name}, want ${GROUP}/${name}`);
  return info;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// awaitCond polls cond (async) until it returns [true].
async function awaitCond(what, cond) {
  const deadline = Date.now() + AWAIT_TIMEOUT_MS;
  for (;;) {
    const [ok, seen] = await cond();
    if (ok) return;
    if (Date.now() > deadline) fail(`timed out after ${AWAIT_TIMEOUT_MS} ms waiting until ${what}; last saw: ${seen}`);
    await sleep(10);
  }
}

// Conn is one Nacos client connection: a grpc-js channel (one TCP
// connection) carrying the unary calls and the bi-directional stream.
class Conn {
  constructor(name, channelOptions = {}) {
    this.name = name;
    this.requestClient = new proto.Request(addr, grpc.credentials.createInsecure(), channelOptions);
    // The stream must share the unary calls' channel: the server knows a
    // client by its TCP connection.
    this.streamClient = new proto.BiRequestStream(addr, grpc.credentials.createInsecure(), {
      channelOverride: this.requestClient.getChannel(),
    });
    this.stream = null;
    this.status = null; // the stream's final status, once it ended
    this.error = null; // the stream's error, or a server request that could not be decoded
    this.pushes = []; // NotifySubscriberRequests received, in order
    this.others = []; // the types of other server requests received
    this.acks = 0; // NotifySubscriberResponses sent
    this.onArrival = () => {};
  }

  // call sends a unary request with a fresh requestId and resolves to the
  // decoded reply and the requestId sent.
  call(type, fields) {
    const requestId = `js-${++lastID}`;
    const body = { requestId, headers: {}, ...fields };
    return new Promise((resolve, reject) => {
      this.requestClient.request(payload(type, body), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, p) => {
        if (err) {
          reject(new StepError(`${this.name}: ${type}: gRPC error ${err.code} (${grpc.status[err.code]}): ${err.details}`));
          return;
        }
        try {
          resolve({ ...decode(p), sent: requestId });
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  // mustCall is call that fails unless the reply is a successful wantType
  // echoing the request's id.
  async mustCall(type, fields, wantType) {
    const r = await this.call(type, fields);
    check(
      r.type === wantType && r.body.resultCode === 200 && r.body.success === true && r.body.requestId === r.sent,
      () => `${this.name}: ${type}: want a successful ${wantType} echoing requestId ${r.sent}, got ${r.type} ${JSON.stringify(r.body).slice(0, 500)}`,
    );
    return r;
  }

  // serverCheck sends ServerCheckRequest and returns the connection id.
  async serverCheck() {
    const r = await this.call('ServerCheckRequest', {});
    check(r.type === 'ServerCheckResponse' && r.body.resultCode === 200, () => `${this.name}: got ${r.type} ${JSON.stringify(r.body)}`);
    check(typeof r.body.connectionId === 'string' && r.body.connectionId !== '',
      () => `${this.name}: no connectionId in ${JSON.stringify(r.body)}`);
    this.id = r.body.connectionId;
    return this.id;
  }

  // setUp opens the stream, sends ConnectionSetupRequest and polls
  // HealthCheckRequest until the server answers 200 (301 until the setup is
  // done); it returns how many polls it took.
  async setUp() {
    this.openStream();
    this.stream.write(payload('ConnectionSetupRequest', {
      requestId: `js-${++lastID}`,
      clientVersion: 'Nacos-JS-Client:v2.3.2',
      tenant: '',
      labels: { source: 'sdk', module: 'naming', AppName: 'grpcjs-e2e' },
      abilityTable: {},
      headers: {},
    }));
    let polls = 0;
    await awaitCond(`${this.name}: HealthCheckRequest answers 200`, async () => {
      polls++;
      const r = await this.call('HealthCheckRequest', {});
      if (r.type === 'HealthCheckResponse' && r.body.resultCode === 200 && r.body.requestId === r.sent) return [true, ''];
      check(r.body.errorCode === 301, () => `${this.name}: HealthCheckRequest answered ${r.type} ${JSON.stringify(r.body)} while setting up`);
      check(!this.error && !this.status, () => `${this.name}: the stream ended during setup: ${this.ended()}`);
      return [false, `${r.type} ${JSON.stringify(r.body)}`];
    });
    return polls;
  }

  openStream() {
    this.stream = this.streamClient.requestBiStream();
    this.stream.on('data', (p) => {
      let r;
      try {
        r = decode(p);
      } catch (e) {
        this.error = e;
        this.onArrival();
        return;
      }
      // Every server request is answered as the Nacos clients do:
      // XxxRequest by XxxResponse with the same requestId.
      const answer = r.type.replace(/Request$/, 'Response');
      this.stream.write(payload(answer, { requestId: r.body.requestId, resultCode: 200, errorCode: 0, success: true, message: '' }));
      if (r.type === 'NotifySubscriberRequest') {
        this.acks++;
        this.pushes.push({ ...r, taken: false });
      } else {
        this.others.push(r.type);
        log(`${this.name}: server request ${r.type} ${JSON.stringify(r.body).slice(0, 200)}`);
      }
      this.onArrival();
    });
    this.stream.on('error', (e) => {
      this.error = e;
      this.onArrival();
    });
    this.stream.on('status', (s) => {
      this.status = s;
      this.onArrival();
    });
  }

  ended() {
    if (this.error) return this.error.message;
    if (this.status) return `status ${this.status.code} (${grpc.status[this.status.code]}) ${this.status.details}`;
    return '';
  }

  // awaitPush waits for a push of service name whose hosts are want; the
  // earlier pushes of the service (the merge window may have split the
  // changes into several) are taken with it.
  awaitPush(name, want) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onArrival = () => {};
        const seen = this.pushes.filter((p) => !p.taken).map((p) => `${p.body.serviceName}: [${addrs(p.body.serviceInfo || {})}]`);
        reject(new StepError(`${this.name}: no push of ${name} with hosts [${want}] within ${AWAIT_TIMEOUT_MS} ms; ` +
          `pushes not taken: ${seen.join('; ') || 'none'}`));
      }, AWAIT_TIMEOUT_MS);
      const look = () => {
        if (this.error || this.status) {
          clearTimeout(timer);
          this.onArrival = () => {};
          reject(new StepError(`${this.name}: the stream ended: ${this.ended()}`));
          return;
        }
        const pushes = this.pushes;
        for (let i = 0; i < pushes.length; i++) {
          const p = pushes[i];
          if (p.taken || p.body.serviceName !== name || !p.body.serviceInfo || !sameAddrs(p.body.serviceInfo, want)) continue;
          for (let j = 0; j <= i; j++) if (pushes[j].body.serviceName === name) pushes[j].taken = true;
          clearTimeout(timer);
          this.onArrival = () => {};
          resolve(p);
          return;
        }
      };
      this.onArrival = look;
      look();
    });
  }

  // close half-closes the stream, waits for the server to end it, and
  // closes the channel. It returns the stream's final status: the server,
  // which drops the client's TCP connection when its stream ends, ends it
  // with OK or, when the connection goes first, grpc-js reports UNAVAILABLE
  // ("Connection dropped"). Any other end is a failure.
  async close() {
    const ended = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new StepError(`${this.name}: the stream did not end within ${AWAIT_TIMEOUT_MS} ms of its half-close`)),
        AWAIT_TIMEOUT_MS);
      const look = () => {
        if (this.status || this.error) {
          clearTimeout(timer);
          resolve(this.status || { code: this.error.code, details: this.error.details || this.error.message });
        }
      };
      this.onArrival = look;
      this.stream.end();
      look();
    });
    check(ended.code === grpc.status.OK || ended.code === grpc.status.UNAVAILABLE,
      () => `${this.name}: the stream ended with status ${ended.code} (${grpc.status[ended.code]}): ${ended.details}`);
    this.requestClient.close();
    this.streamClient.close();
    return `${grpc.status[ended.code]}: ${ended.details}`;
  }
}

function checkPush(p, name) {
  check(p.body.module === 'naming' && p.body.groupName === GROUP && p.body.namespace === NAMESPACE && p.body.serviceName === name,
    () => `push names module ${p.body.module}, namespace ${p.body.namespace}, group ${p.body.groupName}, service ${p.body.serviceName}`);
  check(/^[0-9]+$/.test(String(p.body.requestId)), () => `push requestId ${p.body.requestId} is not a number`);
  serviceInfo(p, name);
}

// --- the flow --------------------------------------------------------------

async function main() {
  const svcA = serviceName;
  const svcB = `${serviceName}-big`;
  const inst1 = instance('10.10.0.1', 8001, { zone: 'a' });
  const inst2 = instance('10.10.0.2', 8002, { zone: 'b' });
  const both = ['10.10.0.1:8001', '10.10.0.2:8002'];

  // app is the client under test: it registers inst1, subscribes, queries.
  const app = new Conn('app');

  step = 'serverCheck';
  const connectionId = await app.serverCheck();
  report({ connectionId });

  step = 'notRegistered';
  const nr = await app.call('HealthCheckRequest', {});
  check(nr.type === 'ErrorResponse' && nr.body.errorCode === 301 && nr.body.resultCode !== 200,
    () => `before the stream's setup, HealthCheckRequest answered ${nr.type} ${JSON.stringify(nr.body)}, want ErrorResponse 301`);
  report({ errorCode: nr.body.errorCode });

  step = 'setup';
  report({ healthChecks: await app.setUp() });

  step = 'register';
  const reg = await app.mustCall('InstanceRequest', svc(svcA, { type: 'registerInstance', instance: inst1 }), 'InstanceResponse');
  check(reg.body.type === 'registerInstance', () => `InstanceResponse type ${reg.body.type}`);
  report({ service: svcA, instance: `${inst1.ip}:${inst1.port}` });

  step = 'subscribe';
  const sub = await app.mustCall('SubscribeServiceRequest', svc(svcA, { subscribe: true, clusters: '' }), 'SubscribeServiceResponse');
  const subInfo = serviceInfo(sub, svcA);
  check(sameAddrs(subInfo, ['10.10.0.1:8001']), () => `subscription answered hosts [${addrs(subInfo)}], want [10.10.0.1:8001]`);
  const h1 = subInfo.hosts[0];
  check(h1.healthy === true && h1.enabled === true && h1.ephemeral === true && h1.weight === 1 && h1.clusterName === 'DEFAULT' &&
    h1.metadata && h1.metadata.zone === 'a', () => `subscription answered host ${JSON.stringify(h1)}`);
  report({ hosts: addrs(subInfo) });

  step = 'secondConnection';
  // A Nacos 2.x client has one instance per service (a second
  // registerInstance replaces the first), so the second instance is another
  // application's: a second channel. grpc-js shares one subchannel (one TCP
  // connection) among channels to the same target unless told not to.
  const peer = new Conn('peer', { 'grpc.use_local_subchannel_pool': 1 });
  const peerID = await peer.serverCheck();
  check(peerID !== connectionId, `the second channel got the first one's connection ${peerID}`);
  report({ connectionId: peerID, healthChecks: await peer.setUp() });

  step = 'pushOnRegister';
  await peer.mustCall('InstanceRequest', svc(svcA, { type: 'registerInstance', instance: inst2 }), 'InstanceResponse');
  const p2 = await app.awaitPush(svcA, both);
  checkPush(p2, svcA);
  report({ hosts: addrs(p2.body.serviceInfo), pushRequestId: p2.body.requestId, acks: app.acks });

  step = 'query';
  const q = await app.mustCall('ServiceQueryRequest', svc(svcA, { cluster: '', healthyOnly: false }), 'QueryServiceResponse');
  const qInfo = serviceInfo(q, svcA);
  check(sameAddrs(qInfo, both), () => `query answered hosts [${addrs(qInfo)}], want [${both}]`);
  report({ hosts: addrs(qInfo) });

  step = 'pushOnDeregister';
  const dereg = await peer.mustCall('InstanceRequest', svc(svcA, { type: 'deregisterInstance', instance: inst2 }), 'InstanceResponse');
  check(dereg.body.type === 'deregisterInstance', () => `InstanceResponse type ${dereg.body.type}`);
  const p3 = await app.awaitPush(svcA, ['10.10.0.1:8001']);
  checkPush(p3, svcA);
  check(Number(p3.body.requestId) > Number(p2.body.requestId), () => `push requestIds ${p2.body.requestId} then ${p3.body.requestId}`);
  report({ hosts: addrs(p3.body.serviceInfo), pushRequestId: p3.body.requestId, acks: app.acks });

  step = 'concurrent';
  // All in flight at once on the one channel: HTTP/2 streams multiplexed on
  // one TCP connection, each answer matched to its own request.
  const calls = [];
  for (let i = 0; i < CONCURRENT_CALLS; i++) {
    calls.push(i % 2 === 0
      ? app.mustCall('ServiceQueryRequest', svc(svcA, { cluster: '', healthyOnly: false }), 'QueryServiceResponse')
      : app.mustCall('HealthCheckRequest', {}, 'HealthCheckResponse'));
  }
  const answers = await Promise.all(calls);
  for (const r of answers) {
    if (r.type === 'QueryServiceResponse') {
      const info = serviceInfo(r, svcA);
      check(sameAddrs(info, ['10.10.0.1:8001']), () => `concurrent query answered hosts [${addrs(info)}]`);
    }
  }
  check(new Set(answers.map((r) => r.body.requestId)).size === CONCURRENT_CALLS, 'concurrent answers repeat a requestId');
  report({ calls: answers.length });

  step = 'large';
  // A batch larger than HTTP/2's initial window each way: the request, the
  // push on the stream and the query's answer all need WINDOW_UPDATEs.
  const bsub = await app.mustCall('SubscribeServiceRequest', svc(svcB, { subscribe: true, clusters: '' }), 'SubscribeServiceResponse');
  check(serviceInfo(bsub, svcB).hosts.length === 0, () => `${svcB} has hosts before the batch`);
  const batch = [];
  const want = [];
  for (let i = 0; i < BATCH_SIZE; i++) {
    const ip = `10.20.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    batch.push(instance(ip, 9000 + i, { blob: BLOB, index: String(i) }));
    want.push(`${ip}:${9000 + i}`);
  }
  const requestBytes = Buffer.byteLength(JSON.stringify({ instances: batch }));
  check(requestBytes > H2_INITIAL_WINDOW, `the batch request is only ${requestBytes} bytes`);
  const br = await app.mustCall('BatchInstanceRequest', svc(svcB, { type: 'batchRegisterInstance', instances: batch }), 'BatchInstanceResponse');
  check(br.body.type === 'batchRegisterInstance', () => `BatchInstanceResponse type ${br.body.type}`);
  const bp = await app.awaitPush(svcB, want);
  checkPush(bp, svcB);
  check(bp.size > H2_INITIAL_WINDOW, `the push of ${svcB} is only ${bp.size} bytes`);
  const bq = await app.mustCall('ServiceQueryRequest', svc(svcB, { cluster: '', healthyOnly: false }), 'QueryServiceResponse');
  const bInfo = serviceInfo(bq, svcB);
  check(sameAddrs(bInfo, want), () => `query of ${svcB} answered ${bInfo.hosts.length} hosts, want ${BATCH_SIZE}`);
  check(bq.size > H2_INITIAL_WINDOW, `the answer of the query of ${svcB} is only ${bq.size} bytes`);
  for (const h of bInfo.hosts) {
    check(h.metadata && h.metadata.blob === BLOB && h.metadata.index === String(h.port - 9000),
      () => `host ${h.ip}:${h.port} came back with metadata ${JSON.stringify(h.metadata).slice(0, 100)}`);
  }
  report({ service: svcB, hosts: bInfo.hosts.length, requestBytes, pushBytes: bp.size, answerBytes: bq.size, acks: app.acks });

  step = 'awaitClose';
  for (const c of [app, peer]) check(!c.error && !c.status, () => `${c.name}: the stream ended early: ${c.ended()}`);
  report({
    connectionIds: [connectionId, peerID],
    acks: app.acks + peer.acks,
    pushes: app.pushes.length + peer.pushes.length,
    otherServerRequests: [...app.others, ...peer.others],
  });
  await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.once('line', () => {
      resolve(); // first: closing emits 'close' at once
      rl.close();
    });
    rl.once('close', () => reject(new StepError('stdin closed before the Go test said to close')));
  });

  step = 'close';
  const statuses = [await app.close(), await peer.close()];
  report({ streamStatus: statuses });
  // Nothing may keep the process alive now; if something does, say so.
  setTimeout(() => {
    process.stderr.write('FAIL exit: the process did not exit within 5 s of closing its channels\n');
    process.exit(1);
  }, 5000).unref();
}

main().catch((e) => {
  process.stderr.write(`FAIL ${step}: ${e instanceof StepError ? e.message : e.stack}\n`);
  process.exit(1);
});
