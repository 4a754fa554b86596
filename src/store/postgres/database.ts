/**
 * The PostgreSQL connection a store uses: a pool for decisions and reads, and one dedicated
 * connection for LISTEN (opened on first use), as node-postgres recommends for notifications.
 */
import pg from 'pg';

export interface Database {
  readonly pool: pg.Pool;
  /** Calls `onPayload` for every notification on `channel`; resolves to the function that stops it. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  readonly url: string;
  readonly poolSize: number;
  /** Longest any statement may run (the server cancels it after that). */
  readonly statementTimeoutMs: number;
  readonly onError?: (error: Error) => void;
}

export function openDatabase(options: DatabaseOptions): Database {
  const config = {
    connectionString: options.url,
    statement_timeout: options.statementTimeoutMs,
    application_name: 'arp-run-coordinator',
  };
  const pool = new pg.Pool({ ...config, max: options.poolSize, connectionTimeoutMillis: 10_000 });
  // An idle client whose connection dropped is removed by the pool; the next query opens another.
  pool.on('error', (error) => options.onError?.(error));
  const handlers = new Map<string, Set<(payload: string) => void>>();
  let listener: Promise<pg.Client> | undefined;
  let closed = false;

  const connectListener = (): Promise<pg.Client> => {
    const client = new pg.Client(config);
    client.on('notification', ({ channel, payload }) => {
      for (const handler of handlers.get(channel) ?? []) handler(payload ?? '');
    });
    client.on('error', (error) => {
      options.onError?.(error);
      // Reconnect and listen again; notifications sent meanwhile are missed, which readers
      // tolerate (they read the log from the database when woken, and follow streams re-check).
      listener = undefined;
      if (!closed && handlers.size > 0) void reconnect();
    });
    return client.connect().then(() => client);
  };
  const reconnect = async () => {
    try {
      const client = await listenerClient();
      for (const channel of handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      options.onError?.(error as Error);
    }
  };
  const listenerClient = () => {
    listener ??= connectListener();
    return listener;
  };

  return {
    pool,
    async listen(channel, onPayload) {
      const client = await listenerClient();
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(onPayload);
      return async () => {
        const current = handlers.get(channel);
        current?.delete(onPayload);
        if (current?.size === 0) {
          handlers.delete(channel);
          await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        }
      };
    },
    async close() {
      closed = true;
      const client = await listener?.catch(() => undefined);
      await client?.end().catch(() => {});
      await pool.end();
    },
  };
}
