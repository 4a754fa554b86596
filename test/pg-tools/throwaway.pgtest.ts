import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { startThrowawayPostgres } from '../../scripts/pg/throwaway.mjs';

const script = fileURLToPath(new URL('../../scripts/pg/throwaway.mjs', import.meta.url));

async function query(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Resolves with the error of a connection attempt (the server must be gone). */
async function connectError(url: string): Promise<NodeJS.ErrnoException> {
  const client = new pg.Client(url);
  try {
    await client.connect();
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
  await client.end();
  throw new Error('the server still accepts connections');
}

function runNode(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: 'pipe' });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout }));
  return { child, exited, stdout: () => stdout };
}

describe('throwaway PostgreSQL server', () => {
  it('serves the suite its server through inject', async () => {
    expect(await query(inject('databaseUrl'), 'select 1 as one')).toEqual([{ one: 1 }]);
  });

  it('starts with durable defaults and a password login, and stop() removes everything', async () => {
    const server = await startThrowawayPostgres();
    try {
      const [row] = await query(
        server.url,
        `select 1 as one, current_user as "user", current_database() as db,
                current_setting('fsync') as fsync, current_setting('synchronous_commit') as sc,
                current_setting('max_connections') as max, (select rolsuper from pg_roles
                where rolname = current_user) as superuser`,
      );
      expect(row).toEqual({
        one: 1,
        user: 'rc',
        db: 'rc',
        fsync: 'on',
        sc: 'on',
        max: '200',
        superuser: false,
      });
      expect(await query(server.adminUrl, 'select current_user as "user"')).toEqual([{ user: 'postgres' }]);
    } finally {
      await server.stop();
    }
    expect(existsSync(server.dir)).toBe(false);
    expect((await connectError(server.url)).code).toBe('ECONNREFUSED');
  });

  it('CLI: runs the command against the server, passes its exit code on, then stops the server', async () => {
    const probe = `
      const { default: pg } = await import('pg');
      const client = new pg.Client(process.env.RC_DATABASE_URL);
      await client.connect();
      const { rows } = await client.query('select $1::int + 1 as n', [41]);
      await client.end();
      console.log(JSON.stringify({ url: process.env.RC_DATABASE_URL, pghost: process.env.PGHOST, n: rows[0].n }));
      process.exit(7);`;
    const run = runNode([script, '--', process.execPath, '--input-type=module', '-e', probe]);
    const { code, stdout } = await run.exited;
    expect(code).toBe(7);
    const seen = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    expect(seen).toMatchObject({ pghost: '127.0.0.1', n: 42 });
    expect((await connectError(seen.url)).code).toBe('ECONNREFUSED');
  });

  it('shuts the server down when the process that started it is killed without stopping it', async () => {
    const holder = `
      const { startThrowawayPostgres } = await import(${JSON.stringify(script)});
      const server = await startThrowawayPostgres();
      console.log(server.url);
      setInterval(() => {}, 1000);`;
    const run = runNode(['--input-type=module', '-e', holder]);
    await new Promise<void>((resolve) => {
      run.child.stdout.on('data', () => {
        if (run.stdout().includes('\n')) resolve();
      });
    });
    const client = new pg.Client(run.stdout().trim());
    await client.connect();
    const terminated = once(client, 'error');
    run.child.kill('SIGKILL');
    const [error] = (await terminated) as [{ code?: string }];
    // 57P01 admin_shutdown: the server was shut down, not merely our socket dropped.
    expect(error.code).toBe('57P01');
    await client.end().catch(() => {});
  });
});
