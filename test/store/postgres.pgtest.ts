/**
 * The PostgreSQL store through the shared Store contract on a real PostgreSQL server (the throwaway
 * server of `npm run test:postgres`), where connections are really concurrent: row locks, batches
 * committed side by side, and notifications on a dedicated LISTEN connection.
 */
import { afterAll, beforeAll, inject } from 'vitest';
import { type Database, openDatabase } from '../../src/store/postgres/database.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { storeContract } from './store-contract.js';

let database: Database;
const schema = `contract_${process.pid}`;

beforeAll(async () => {
  database = openDatabase({ url: inject('databaseUrl'), poolSize: 10, statementTimeoutMs: 30_000 });
  await migrate(database.pool, schema);
});

afterAll(async () => {
  await database?.close();
});

storeContract('PostgresStore (PostgreSQL server)', async () => {
  const store = new PostgresStore({ db: database, schema, instanceId: 'test' });
  await store.start();
  return store;
});
