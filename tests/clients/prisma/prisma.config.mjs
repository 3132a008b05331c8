// Prisma 7 reads its CLI configuration from here. Only `prisma generate` runs in the tests
// (offline); it needs no datasource URL.
export default { schema: 'schema.prisma' };
