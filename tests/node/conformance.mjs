// rollwatch's control protocol (docs/control-protocol.md) checked from Node with code rollwatch did not write:
// `canonicalize` (RFC 8785), node:crypto (SHA-256, MD5, HMAC-SHA256, Ed25519) and, for a live command, kafkajs.
//
//   node conformance.mjs                      signing and bucketing vectors only
//   node conformance.mjs --live BOOTSTRAP TOPIC COMMAND_ID KEY_ID
//                                             also consume TOPIC from the start and verify the command
//                                             COMMAND_ID, signed by KEY_ID with the HMAC secret in
//                                             $ROLLWATCH_NODE_HMAC_SECRET
//   node conformance.mjs --ofrep BASE_URL WORKFLOW SEGMENT TARGETING_KEY
//                                             also evaluate every flag through the OpenFeature server SDK
//                                             with the stock npm OFREP provider against the flag store
//
// Prints one JSON line of counts; exits 1 on the first mismatch (with what and where).
import { createHash, createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import canonicalize from 'canonicalize';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const load = (path) => JSON.parse(readFileSync(join(ROOT, path), 'utf8'));
const fail = (what) => {
  console.error(`conformance failure: ${what}`);
  process.exit(1);
};

// --- signing -------------------------------------------------------------------------------------
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function hmacValue(secret, bytes) {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(bytes).digest('base64');
}

function edVerify(publicKeyB64, bytes, valueB64) {
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(publicKeyB64, 'base64')]),
    format: 'der',
    type: 'spki',
  });
  return verify(null, bytes, key, Buffer.from(valueB64, 'base64'));
}

function signedBytes(document) {
  const { signature, ...rest } = document;
  return { signature, bytes: Buffer.from(canonicalize(rest), 'utf8') };
}

function checkSigning() {
  const vectors = load('schemas/vectors/signing.v1.json');
  const { secret } = vectors.keys['hmac-sha256'];
  const { public_key_base64: pub } = vectors.keys.ed25519;
  let checked = 0;
  for (const c of vectors.cases) {
    const canonical = canonicalize(c.document);
    if (canonical !== c.canonical) fail(`${c.name}: canonical bytes differ:\n${canonical}\n${c.canonical}`);
    const bytes = Buffer.from(canonical, 'utf8');
    if (hmacValue(secret, bytes) !== c.signatures['hmac-sha256']) fail(`${c.name}: HMAC-SHA256 differs`);
    if (!edVerify(pub, bytes, c.signatures.ed25519)) fail(`${c.name}: Ed25519 signature does not verify`);
    const { signature, bytes: received } = signedBytes(c.signed);
    if (signature.canon !== 'rfc8785' || signature.alg !== 'ed25519') fail(`${c.name}: unexpected signature header`);
    if (!edVerify(pub, received, signature.value)) fail(`${c.name}: the signed document does not verify`);
    const tampered = signedBytes({ ...c.signed, extra: 1 }).bytes;
    if (edVerify(pub, tampered, signature.value)) fail(`${c.name}: a changed document verified`);
    checked += 1;
  }
  return checked;
}

// --- bucketing -----------------------------------------------------------------------------------
function basisPoints(percent) {
  return Math.min(Math.max(Math.floor(percent * 100 + 0.5), 0), 10000);
}

function bucket(scheme, workflow, unitId) {
  if (scheme === 'sha256') {
    const h = createHash('sha256').update(`${workflow}:${unitId}`, 'utf8').digest();
    return Number(h.readBigUInt64BE(0) % 10000n);
  }
  if (scheme === 'md5-seed') {
    const m = createHash('md5').update(unitId, 'utf8').digest('hex');
    return Number(BigInt(`0x${m}`) % 100n) * 100;
  }
  throw new Error(`unknown scheme ${scheme}`);
}

function checkBucketing() {
  const vectors = load('schemas/vectors/bucketing.v1.json');
  for (const p of vectors.percents) {
    if (basisPoints(p.percent) !== p.basis_points) fail(`basis points of ${p.percent}`);
  }
  let decisions = 0;
  for (const c of vectors.cases) {
    const b = bucket(c.scheme, c.workflow, c.unit_id);
    if (b !== c.bucket) fail(`${c.scheme} ${c.workflow} ${JSON.stringify(c.unit_id)}: bucket ${b}, expected ${c.bucket}`);
    vectors.percents.forEach((p, i) => {
      if ((b < basisPoints(p.percent)) !== c.in_canary[i]) fail(`${c.scheme} ${c.unit_id} at ${p.percent}%`);
      decisions += 1;
    });
  }
  return decisions;
}

// --- a live command from the broker --------------------------------------------------------------
async function checkLive(bootstrap, topic, commandId, keyId) {
  const secret = process.env.ROLLWATCH_NODE_HMAC_SECRET;
  if (!secret) fail('ROLLWATCH_NODE_HMAC_SECRET is not set');
  const { Kafka, logLevel } = (await import('kafkajs')).default;
  const kafka = new Kafka({ clientId: 'rollwatch-node-conformance', brokers: [bootstrap], logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({
    groupId: `rollwatch-node-${process.pid}-${Date.now()}`,
    sessionTimeout: 6000,
    rebalanceTimeout: 1000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const found = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`command ${commandId} not seen on ${topic} within 30 s`)), 30000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          const document = JSON.parse(message.value.toString('utf8'));
          if (document.command_id === commandId) {
            clearTimeout(timer);
            resolve({ document, key: message.key?.toString('utf8') });
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  const { document, key } = found;
  if (key !== document.workflow) fail(`record key ${key} is not the workflow ${document.workflow}`);
  const { signature, bytes } = signedBytes(document);
  if (signature.key_id !== keyId || signature.alg !== 'hmac-sha256' || signature.canon !== 'rfc8785') {
    fail(`unexpected signature header ${JSON.stringify(signature)}`);
  }
  const expected = Buffer.from(hmacValue(secret, bytes), 'base64');
  const given = Buffer.from(signature.value, 'base64');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) fail('the live command does not verify');
  const forged = signedBytes({ ...document, flags: { ...document.flags, 'ai.tools.enabled': true } }).bytes;
  if (hmacValue(secret, forged) === signature.value) fail('a changed live command verified');
  return { command_id: document.command_id, workflow: document.workflow, action: document.action };
}

// --- OpenFeature through the stock OFREP provider ----------------------------------------------------
async function evaluateOfrep(baseUrl, workflow, segment, targetingKey) {
  const { OpenFeature } = await import('@openfeature/server-sdk');
  const { OFREPProvider } = await import('@openfeature/ofrep-provider');
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl }));
  const client = OpenFeature.getClient();
  const context = { targetingKey, workflow, ...(segment ? { segment } : {}) };
  const details = {
    'ai.route.provider': await client.getStringDetails('ai.route.provider', 'none', context),
    'ai.route.mode': await client.getStringDetails('ai.route.mode', 'none', context),
    'ai.prompt.version': await client.getStringDetails('ai.prompt.version', 'none', context),
    'ai.tools.enabled': await client.getBooleanDetails('ai.tools.enabled', false, context),
    'ai.action.mode': await client.getStringDetails('ai.action.mode', 'none', context),
    'ai.rollout.percent': await client.getNumberDetails('ai.rollout.percent', -1, context),
    'ai.rollout.canary': await client.getBooleanDetails('ai.rollout.canary', false, context),
    'ai.unknown': await client.getStringDetails('ai.unknown', 'fallback', context),
  };
  await OpenFeature.close();
  return Object.fromEntries(
    Object.entries(details).map(([key, d]) => [
      key,
      { value: d.value, reason: d.reason, variant: d.variant ?? null, errorCode: d.errorCode ?? null,
        metadata: d.flagMetadata },
    ]),
  );
}

const result = { signing_cases: checkSigning(), bucket_decisions: checkBucketing() };
const args = process.argv.slice(2);
if (args[0] === '--live') {
  if (args.length !== 5) fail('usage: --live BOOTSTRAP TOPIC COMMAND_ID KEY_ID');
  result.live = await checkLive(args[1], args[2], args[3], args[4]);
}
if (args[0] === '--ofrep') {
  if (args.length !== 5) fail('usage: --ofrep BASE_URL WORKFLOW SEGMENT TARGETING_KEY');
  result.ofrep = await evaluateOfrep(args[1], args[2], args[3], args[4]);
}
console.log(JSON.stringify(result));
