/**
 * The PostgreSQL connection a store uses: a pool for decisions and reads, and one dedicated
 * connection for LISTEN (opened on first use), as node-postgres recommends for notifications. A lost
 * LISTEN session is opened again, with growing delays, for as long as it takes.
 */
import pg from 'pg';

export interface Database {
  readonly pool: pg.Pool;
  /**
   * Calls `onPayload` for every notification on `channel`, and `onResume` after the listening session
   * was lost and opened again (notifications sent meanwhile are lost); resolves to the function that
   * stops listening.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onResume?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * The LISTEN session: `idle` before anything listens, `connected`, or `lost` while it is being
   * opened again (health reporting; a handle without one is taken as connected).
   */
  listenState?(): 'idle' | 'connected' | 'lost';
  close(): Promise<void>;
}

interface Listening {
  readonly onPayload: (payload: string) => void;
  readonly onResume?: () => void;
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
    // Every statement of the store finds its rows through an index. Right after a schema is created
    // (or a table has grown fast since it was last analyzed) the planner thinks the tables are tiny
    // and scans them whole, and prepared statements keep that plan; a point read then costs a scan
    // of the table. Scans stay possible where no index serves, just never preferred.
    options: '-c enable_seqscan=off',
  };
  // Pipelined: the writes of a batch and its COMMIT go out back to back, not one round trip each.
  const pool = new pg.Pool({
    ...config,
    pipeline: true,
    max: options.poolSize,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client whose connection dropped is removed by the pool; the next query opens another.
  pool.on('error', (error) => options.onError?.(error));
  const handlers = new Map<string, Set<Listening>>();
  let listener: Promise<pg.Client> | undefined;
  let listenState: 'idle' | 'connected' | 'lost' = 'idle';
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const connectListener = (): Promise<pg.Client> => {
    const client = new pg.Client(config);
    client.on('notification', ({ channel, payload }) => {
      for (const handler of handlers.get(channel) ?? []) handler.onPayload(payload ?? '');
    });
    client.on('error', (error) => {
      options.onError?.(error);
      if (listener === connecting) lost();
    });
    const connecting = client.connect().then(() => {
      listenState = 'connected';
      return client;
    });
    return connecting;
  };
  /** The LISTEN session is gone: open another, again and again until it works. */
  const lost = (delayMs = 250) => {
    listener = undefined;
    if (!closed) listenState = 'lost';
    if (closed || handlers.size === 0 || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      resume().catch((error: Error) => {
        options.onError?.(error);
        listener = undefined;
        lost(Math.min(delayMs * 2, 5_000));
      });
    }, delayMs);
    retry.unref();
  };
  /**
   * Listens again on every channel, then tells every listener: notifications sent while the session
   * was gone are lost, so whoever relies on them must look for itself.
   */
  const resume = async () => {
    const client = await listenerClient();
    for (const channel of handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    for (const set of handlers.values()) for (const handler of set) handler.onResume?.();
  };
  const listenerClient = () => {
    listener ??= connectListener();
    return listener;
  };

  return {
    pool,
    async listen(channel, onPayload, onResume) {
      const client = await listenerClient();
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      const handler: Listening = { onPayload, ...(onResume ? { onResume } : {}) };
      set.add(handler);
      return async () => {
        const current = handlers.get(channel);
        current?.delete(handler);
        if (current?.size === 0) {
          handlers.delete(channel);
          const live = await listener?.catch(() => undefined);
          await live?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        }
      };
    },
    listenState: () => listenState,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const client = await listener?.catch(() => undefined);
      await client?.end().catch(() => {});
      await pool.end();
    },
  };
}
