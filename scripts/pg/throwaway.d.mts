// Types for throwaway.mjs, so that TypeScript tests and vitest setup files can import it.

export interface ThrowawayPostgresOptions {
  /** Extra server settings, passed as `-c name=value` (e.g. `{ synchronous_commit: 'off' }`). */
  settings?: Record<string, string>;
  /** max_connections; default 200. */
  maxConnections?: number;
  /** A taskset CPU list (e.g. '0') the server and all its backends are pinned to; default unpinned. */
  cpus?: string;
  /** Receives one progress line when the server is ready; default silent. */
  log?: (line: string) => void;
}

export interface ThrowawayPostgres {
  /** postgres://rc:…@127.0.0.1:PORT/rc — a password login that owns the database, not a superuser. */
  url: string;
  /** The same database as the `postgres` superuser. */
  adminUrl: string;
  port: number;
  /** The postmaster's pid (the backends are its children). */
  pid: number;
  /** The temp directory holding the cluster, the socket and server.log; removed by stop(). */
  dir: string;
  bindir: string;
  /** RC_DATABASE_URL, RC_TEST_DATABASE_URL and PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE. */
  env: Record<string, string>;
  /** Shuts the server down (immediately: the data is discarded) and removes the directory. */
  stop(): Promise<void>;
}

export function startThrowawayPostgres(options?: ThrowawayPostgresOptions): Promise<ThrowawayPostgres>;
