// Conformance of the running api with docs/openapi.yaml: sends real requests that produce every documented
// outcome, and for each response checks against the spec's operation:
//   - the status code is the one the case expects AND is declared for the operation (a method the path
//     does not define must get a declared 405);
//   - the Content-Type is a declared media type of that response;
//   - the headers the spec marks required are present and match their schema pattern/enum;
//   - the JSON body validates against the response schema (type, required, properties, enum, pattern,
//     minimum/maximum, additionalProperties: false), and a problem's `status` equals the HTTP status;
// and finally that every status declared for POST /v1/charges and GET /v1/charges/{id} was observed.
//
//   node openapi_conformance.mjs SPEC BASE_URL DOWN_BASE_URL API_KEY OTHER_TENANT_KEY [BUSY_BASE_URL]
// DOWN_BASE_URL is an api whose PostgreSQL is unreachable (503s); BASE_URL's api delays every claim
// (failpoint api.after_claim=delay(...)) so that a concurrent request sees the key in flight (409);
// BUSY_BASE_URL's api does the same with --max-pending 1, so a concurrent new charge is shed (503).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../ops/package.json', import.meta.url));
const YAML = require('yaml');

const [specPath, base, downBase, apiKey, otherKey, busyBase] = process.argv.slice(2);
if (!otherKey) {
  console.error('usage: node openapi_conformance.mjs SPEC BASE_URL DOWN_BASE_URL API_KEY OTHER_TENANT_KEY');
  process.exit(2);
}
const spec = YAML.parse(readFileSync(specPath, 'utf8'));

function deref(node) {
  while (node && node.$ref) {
    const parts = node.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    node = parts.reduce((n, p) => n?.[p], spec);
    if (!node) throw new Error('unresolved $ref');
  }
  return node;
}

// A small JSON Schema (2020-12 subset) validator: enough for the spec's own schemas.
function validate(schema, value, path, errors) {
  schema = deref(schema);
  const types = schema.type === undefined ? null : [].concat(schema.type);
  const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array'
    : Number.isInteger(v) ? 'integer' : typeof v);
  if (types) {
    const t = typeOf(value);
    const ok = types.includes(t) || (t === 'integer' && types.includes('number'));
    if (!ok) { errors.push(`${path}: expected ${types.join('|')}, got ${t}`); return; }
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
    if (schema.maxLength !== undefined && [...value].length > schema.maxLength) errors.push(`${path}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const r of schema.required ?? []) if (!(r in value)) errors.push(`${path}: missing required field '${r}'`);
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties?.[k]) validate(schema.properties[k], v, `${path}.${k}`, errors);
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected field '${k}'`);
    }
  }
}

function request(baseUrl, { method, path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, baseUrl), { method, headers, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// Bytes that are not HTTP/1.1 at all: the transport answers 400 bad-request and closes.
function rawRequest(baseUrl, bytes) {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(bytes));
    const chunks = [];
    s.setTimeout(10000, () => s.destroy(new Error('timeout')));
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      const [head, ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0].split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
  });
}

const failures = [];
const observed = new Map(); // "METHOD template" -> Set(status)

function findOperation(method, path) {
  for (const [template, item] of Object.entries(spec.paths)) {
    const re = new RegExp('^' + template.replace(/\{[^}]+\}/g, '[^/]+') + '$');
    if (!re.test(path)) continue;
    const op = item[method.toLowerCase()];
    if (op) return { template, op, key: `${method} ${template}` };
    // A method the path does not define: the spec must declare the 405 on one of the path's operations.
    const with405 = Object.entries(item).find(([, o]) => o?.responses?.['405']);
    return { template, op: with405?.[1], key: `${with405?.[0]?.toUpperCase()} ${template}`, undefinedMethod: true };
  }
  return null;
}

function check(name, req, res, expectStatus) {
  const errs = [];
  if (res.status !== expectStatus) errs.push(`status ${res.status}, the case expects ${expectStatus}`);
  const found = findOperation(req.method, req.path);
  if (!found?.op) {
    errs.push(`no operation in the spec for ${req.method} ${req.path}`);
  } else {
    if (found.undefinedMethod && res.status !== 405) errs.push(`undefined method answered ${res.status}, not 405`);
    const declared = found.op.responses[String(res.status)];
    if (!declared) {
      errs.push(`status ${res.status} is not declared for ${found.key}`);
    } else {
      if (!observed.has(found.key)) observed.set(found.key, new Set());
      observed.get(found.key).add(String(res.status));
      const resp = deref(declared);
      const ct = (res.headers['content-type'] ?? '').split(';')[0].trim();
      const media = resp.content?.[ct];
      if (resp.content && !media) errs.push(`Content-Type '${ct}' not declared (declared: ${Object.keys(resp.content)})`);
      for (const [hname, hdef0] of Object.entries(resp.headers ?? {})) {
        const hdef = deref(hdef0);
        const v = res.headers[hname.toLowerCase()];
        if (v === undefined) { if (hdef.required) errs.push(`required header ${hname} missing`); continue; }
        const he = [];
        validate(hdef.schema ?? {}, v, `header ${hname}`, he);
        errs.push(...he);
      }
      if (media?.schema && ct.endsWith('json')) {
        let body;
        try { body = JSON.parse(res.body); } catch { errs.push(`body is not JSON: ${res.body.slice(0, 80)}`); }
        if (body !== undefined) {
          validate(media.schema, body, 'body', errs);
          if (ct === 'application/problem+json' && body.status !== res.status) errs.push(`problem status ${body.status} != ${res.status}`);
        }
      }
    }
  }
  if (errs.length) failures.push(`${name}: ${errs.join('; ')}`);
  console.log(`${errs.length ? 'FAIL' : 'ok  '} ${res.status} ${req.method} ${req.path}  ${name}`);
  return res;
}

async function run(name, baseUrl, req, expectStatus) {
  const res = await request(baseUrl, req);
  return check(name, req, res, expectStatus);
}

const auth = (k = apiKey) => ({ Authorization: `Bearer ${k}` });
const json = { 'Content-Type': 'application/json' };
const charge = { account_id: 'acct_conformance', amount: 2500, currency: 'EUR', description: 'conformance' };
const post = (key, body, extra = {}) => ({
  method: 'POST', path: '/v1/charges',
  headers: { ...auth(), ...json, ...(key === null ? {} : { 'Idempotency-Key': key }), ...extra },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

// 1. 201 + 409: the api delays every claim (failpoint), so of two concurrent requests with one key, the
// one that claims is in flight while the other arrives: exactly one 201 and one 409, in either order.
const k1 = `conf-${randomUUID()}`;
const pair = await Promise.all([request(base, post(k1, charge)), request(base, post(k1, charge))]);
const conflictRes = pair.find((r) => r.status === 409) ?? pair[1];
const createdRes = pair.find((r) => r !== conflictRes);
check('same key while the first is in flight', post(k1, charge), conflictRes, 409);
const created = check('create', post(k1, charge), createdRes, 201);
const replay = await run('replay with the same key and body', base, post(k1, charge), 201);
if (replay.headers['idempotent-replayed'] !== 'true') failures.push('replay: no Idempotent-Replayed: true');
if (created.headers['idempotent-replayed'] !== undefined) failures.push('create: Idempotent-Replayed on a first response');
if (replay.body !== created.body) failures.push('replay: body is not byte-identical');
if (replay.headers['idempotency-key-expires'] !== created.headers['idempotency-key-expires']) failures.push('replay: Idempotency-Key-Expires differs');
await run('same key, different body', base, post(k1, { ...charge, amount: 2501 }), 422);

// 2. Requests that are refused and never stored against the key.
await run('no API key', base, { ...post(`conf-${randomUUID()}`, charge), headers: { ...json, 'Idempotency-Key': 'x' } }, 401);
await run('unknown API key', base, post(`conf-${randomUUID()}`, charge, { Authorization: 'Bearer sk_nope' }), 401);
await run('no Idempotency-Key', base, post(null, charge), 400);
await run('invalid Idempotency-Key', base, post('has space', charge), 400);
await run('not application/json', base, post(`conf-${randomUUID()}`, charge, { 'Content-Type': 'text/plain' }), 415);
await run('body over 16 KiB', base, post(`conf-${randomUUID()}`, { ...charge, description: 'x'.repeat(17000) }), 413);
await run('malformed JSON', base, post(`conf-${randomUUID()}`, '{"account_id":'), 400);
await run('invalid field', base, post(`conf-${randomUUID()}`, { ...charge, amount: 12.5 }), 400);
await run('unknown field', base, post(`conf-${randomUUID()}`, { ...charge, colour: 'red' }), 400);
await run('header block over 8 KiB', base, post(`conf-${randomUUID()}`, charge, { 'X-Padding': 'p'.repeat(9000) }), 431);
await run('GET on the collection', base, { method: 'GET', path: '/v1/charges', headers: auth() }, 405);
check('not HTTP/1.1', { method: 'POST', path: '/v1/charges' }, await rawRequest(base, 'NOT HTTP\r\n\r\n'), 400);

// 3. Reading charges.
const id = JSON.parse(created.body).id;
const got = await run('read own charge', base, { method: 'GET', path: `/v1/charges/${id}`, headers: auth() }, 200);
if (got.body !== created.body) failures.push('GET /v1/charges/{id}: body differs from the 201');
await run('read without a key', base, { method: 'GET', path: `/v1/charges/${id}` }, 401);
await run("another tenant's charge", base, { method: 'GET', path: `/v1/charges/${id}`, headers: auth(otherKey) }, 404);
await run('unknown charge', base, { method: 'GET', path: '/v1/charges/ch_0000', headers: auth() }, 404);
await run('POST on a charge', base, { method: 'POST', path: `/v1/charges/${id}`, headers: { ...auth(), ...json }, body: '{}' }, 405);

// 4. Operational endpoints.
await run('liveness', base, { method: 'GET', path: '/healthz' }, 200);
await run('readiness', base, { method: 'GET', path: '/readyz' }, 200);
await run('metrics', base, { method: 'GET', path: '/metrics' }, 200);
const big = { 'X-Padding': 'p'.repeat(9000) };
for (const path of ['/healthz', '/readyz', '/metrics', `/v1/charges/${id}`]) {
  await run(`header block over 8 KiB on ${path}`, base, { method: 'GET', path, headers: { ...auth(), ...big } }, 431);
}

// 5. PostgreSQL unreachable: 503 with Retry-After; liveness stays 200.
await run('create while PostgreSQL is down', downBase, post(`conf-${randomUUID()}`, charge), 503);
await run('read while PostgreSQL is down', downBase, { method: 'GET', path: `/v1/charges/${id}`, headers: auth() }, 503);
await run('readiness while PostgreSQL is down', downBase, { method: 'GET', path: '/readyz' }, 503);
await run('liveness while PostgreSQL is down', downBase, { method: 'GET', path: '/healthz' }, 200);

// 6. The bounded queue full: of two concurrent new charges one waits (its claim delayed), the other is shed.
if (busyBase) {
  const reqs = [post(`conf-${randomUUID()}`, charge), post(`conf-${randomUUID()}`, charge)];
  const both = await Promise.all(reqs.map((r) => request(busyBase, r)));
  const i = both.findIndex((r) => r.status === 503);
  const shed = check('create while the queue is full', reqs[Math.max(i, 0)], both[Math.max(i, 0)], 503);
  if (!/"type":"\/problems\/overloaded"/.test(shed.body)) failures.push(`queue full: not /problems/overloaded: ${shed.body}`);
}

// Every declared status of the charge operations was produced by a real request.
for (const [template, item] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const key = `${method.toUpperCase()} ${template}`;
    const missing = Object.keys(op.responses).filter((s) => !observed.get(key)?.has(s));
    if (missing.length) failures.push(`${key}: declared but never observed: ${missing.join(', ')}`);
  }
}

if (failures.length) {
  console.error(`\n${failures.length} conformance failure(s):\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`\nall responses conform to ${specPath}`);
