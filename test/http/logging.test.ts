/** Request ids, request logging and the 500 path: logs carry reqId; clients never see internals. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock, useApp } from '../helpers/app.js';
import { intercept, newTestStore } from '../helpers/stores.js';

const newApp = useApp();

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

describe('request ids and logs', () => {
  it('echoes a sane x-request-id, generates one otherwise, and logs requests with it when asked', async () => {
    const { lines, logger } = capture();
    const t = await newApp({ logger, options: { logRequests: true } });
    const given = await t.request({
      method: 'GET',
      url: '/v1/health',
      headers: { 'x-request-id': 'trace-42' },
    });
    expect(given.headers['x-request-id']).toBe('trace-42');
    const generated = await t.request({
      method: 'GET',
      url: '/v1/health',
      headers: { 'x-request-id': 'bad id!' },
    });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f]{6}-[0-9a-z]+$/);
    const logged = lines.filter((line) => line.msg === 'request');
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ reqId: 'trace-42', method: 'GET', url: '/v1/health', status: 200 });
    expect(logged[1]?.reqId).toBe(generated.headers['x-request-id']);
  });

  it('logs nothing per request by default', async () => {
    const { lines, logger } = capture();
    const t = await newApp({ logger });
    await t.request({ method: 'GET', url: '/v1/health' });
    await t.request({ method: 'GET', url: '/v1/runs/nope' });
    expect(lines).toEqual([]);
  });

  it('answers an unexpected failure with a bare 500 internal_error and logs it with the request id', async () => {
    const { lines, logger } = capture();
    const clock = new ManualClock();
    const broken = intercept(await newTestStore(clock), {
      runJson: async () => {
        throw new Error('disk on fire at http://10.0.0.7:5432/internal');
      },
    });
    const t = await newApp({ clock, logger, store: broken });
    const res = await t.request({ method: 'GET', url: '/v1/runs/r1', headers: { 'x-request-id': 'req-9' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'internal_error', message: 'Internal server error' } });
    expect(res.body).not.toContain('10.0.0.7');
    const failure = lines.find((line) => line.msg === 'request failed');
    expect(failure).toMatchObject({ reqId: 'req-9', level: 50 });
    expect(JSON.stringify(failure)).toContain('disk on fire');
  });
});
