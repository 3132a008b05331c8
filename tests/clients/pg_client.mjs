// Logs in with DATABASE_URL the way a node-postgres app (and Prisma 7's @prisma/adapter-pg)
// does: the URL as connectionString, nothing else. Trust for a private CA comes from the
// environment (NODE_EXTRA_CA_CERTS), never from the Secret. Prints {"user", "database",
// "ssl"} on success; on failure the error's message (node-postgres never puts the password
// in it) and exit status 1.
import pg from 'pg';

const QUERY = `select current_user as "user", current_database() as "database",
  (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as "ssl"`;

const client = new pg.Client({
  connectionString: process.env.DATABASE_URL,
  connectionTimeoutMillis: 10000,
});
try {
  await client.connect();
  const { rows } = await client.query(QUERY);
  console.log(JSON.stringify(rows[0]));
  await client.end();
} catch (e) {
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
}
