// Logs in with DATABASE_URL through Prisma 7 and @prisma/adapter-pg, as a Prisma app does:
//   node prisma_client.mjs DIR
// DIR holds the client `prisma generate` made from prisma/schema.prisma (clients_test.go runs
// it). The table is made with raw SQL because Prisma Migrate cannot run offline. Prints
// {"user", "database", "ssl", "notes"} on success; on failure the error's message and exit
// status 1. Trust for a private CA comes from NODE_EXTRA_CA_CERTS, never from the Secret.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { PrismaPg } = require('@prisma/adapter-pg');
const { PrismaClient } = require(path.resolve(process.argv[2], 'generated'));

const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }),
});
try {
  await prisma.$executeRawUnsafe(
    'create table if not exists "Note" (id serial primary key, body text not null)');
  const body = `written by prisma at ${new Date().toISOString()}`;
  const note = await prisma.note.create({ data: { body } });
  const back = await prisma.note.findUnique({ where: { id: note.id } });
  if (!back || back.body !== body) throw new Error('the note did not read back');
  const [row] = await prisma.$queryRaw`select current_user as "user",
    current_database() as "database",
    (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as "ssl"`;
  console.log(JSON.stringify({ ...row, notes: await prisma.note.count() }));
} catch (e) {
  console.error(`${e.name}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await prisma.$disconnect();
}
