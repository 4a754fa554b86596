import { describe, expect, it } from 'vitest';
import { startRun, useApp } from './helpers/app.js';

describe('service', () => {
  const app = useApp();
  it('answers health and starts a run', async () => {
    const t = await app();
    const health = await t.request({ method: 'GET', url: '/v1/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json().status).toBe('ok');
    const run = await startRun(t);
    expect(run.state).toBe('running');
  });
});
