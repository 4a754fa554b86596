/**
 * The real process exports spans over OTLP/HTTP when the standard variables say so: a loopback
 * collector receives the request spans of a traced Run (flushed at SIGTERM at the latest), and a
 * process started without them logs that it exports nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const done of cleanup.splice(0)) done();
});

function startService(env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', '--port', '0'], {
    cwd: root,
    env: { ...clean, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup.push(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const match = /Server listening at (http:\/\/[^"]+)/.exec(stdout);
      if (match && stdout.includes('traces:')) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
  // Only awaited by tests that expect the service to come up.
  listening.catch(() => {});
  return { child, listening, exited: once(child, 'exit'), stdout: () => stdout };
}

/** An OTLP/HTTP collector on loopback that keeps every JSON export it receives. */
async function collector() {
  const bodies: unknown[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk) => {
      text += chunk;
    });
    req.on('end', () => {
      if (req.url === '/v1/traces') bodies.push(JSON.parse(text));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
}

interface OtlpSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
}

describe('OTLP export', () => {
  it('sends the spans of a traced Run to the collector named by OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    const otlp = await collector();
    const service = startService({
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
    const base = await service.listening;
    expect(service.stdout()).toContain(`traces: exported (OTLP/HTTP to ${otlp.url}/)`);
    const trace = '0af7651916cd43dd8448eb211c80319c';
    const res = await request(`${base}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${trace}-b7ad6b7169203331-01` },
      body: JSON.stringify({ root_node_type_ref: { node_type_id: 'composite.x', version: '1' }, input: {} }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    service.child.kill('SIGTERM');
    const [code] = await service.exited;
    expect(code).toBe(0);

    const spans: OtlpSpan[] = otlp.bodies.flatMap((body) =>
      (body as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }).resourceSpans.flatMap((r) =>
        r.scopeSpans.flatMap((s) => s.spans),
      ),
    );
    const start = spans.find((s) => s.name === 'start_run');
    expect(start, JSON.stringify(spans.map((s) => s.name))).toBeDefined();
    expect(start!.traceId).toBe(trace);
    expect(start!.parentSpanId).toBe('b7ad6b7169203331');
    expect(spans.filter((s) => s.name === 'commit' && s.traceId === trace).length).toBeGreaterThan(0);
    const resource = (
      otlp.bodies[0] as { resourceSpans: { resource: { attributes: { key: string }[] } }[] }
    ).resourceSpans[0]!.resource.attributes.map((a) => a.key);
    expect(resource).toContain('service.name');
  });

  it('exports nothing, and says so, without OTEL variables', async () => {
    const service = startService({});
    await service.listening;
    expect(service.stdout()).toContain('traces: not exported');
  });

  it('refuses an exporter it does not support', async () => {
    const service = startService({ OTEL_TRACES_EXPORTER: 'zipkin' });
    const [code] = await service.exited;
    expect(code).toBe(1);
  });
});
