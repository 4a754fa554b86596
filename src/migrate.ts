/**
 * `npm run migrate`: applies the PostgreSQL schema's migrations by hand (the service also applies
 * them at startup). Reads the same RC_DATABASE_* settings as the service.
 */
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './store/postgres/database.js';
import { migrate } from './store/postgres/migrate.js';
import { redactUrl } from './store/postgres/settings.js';

async function main(): Promise<void> {
  let database: NonNullable<ReturnType<typeof loadConfig>['app']['database']>;
  try {
    const config = loadConfig(process.env);
    if (!config.app.database) throw new ConfigError(['RC_DATABASE_URL is required to migrate']);
    database = config.app.database;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const db = openDatabase({ url: database.url, poolSize: 1, statementTimeoutMs: 600_000 });
  try {
    const { applied, current } = await migrate(db.pool, database.schema);
    const where = `${redactUrl(database.url)}, schema ${database.schema}`;
    process.stdout.write(
      applied.length > 0
        ? `applied migrations ${applied.join(', ')} to ${where}; now at version ${current}\n`
        : `${where} is up to date at version ${current}\n`,
    );
  } finally {
    await db.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`migration failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
