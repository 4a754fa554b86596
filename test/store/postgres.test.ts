/**
 * The PostgreSQL store through the shared Store contract, on PGlite (real PostgreSQL compiled to
 * WASM, in process), so that `npm test` needs nothing but Node. The same contract runs against a real
 * server in `npm run test:postgres`.
 */
import { afterAll, beforeAll } from 'vitest';
import { migrate } from '../../src/store/postgres/migrate.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { openPglite, type PgliteDatabase } from '../helpers/pglite.js';
import { storeContract } from './store-contract.js';

let database: PgliteDatabase;
const schema = 'contract';

beforeAll(async () => {
  database = await openPglite();
  await migrate(database.pool, schema);
}, 60_000);

afterAll(async () => {
  await database?.close();
});

storeContract('PostgresStore (PGlite)', async () => {
  const store = new PostgresStore({ db: database, schema, instanceId: 'test' });
  await store.start();
  return store;
});
