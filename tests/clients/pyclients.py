"""Log in with the values pgtoken-rotator wrote, the way Python apps do.

    pyclients.py asyncpg-url        asyncpg.connect(DATABASE_URL)             (format url)
    pyclients.py asyncpg-prefect    asyncpg.connect(**parts of the Prefect URL) (format prefect)
    pyclients.py sqlalchemy-prefect SQLAlchemy 2 async engine, built as Prefect 3 builds it
                                    (format prefect)

The values come from the environment, as envFrom puts a Secret's keys there. Trust for a
private CA comes from the environment too, never from the Secret: PGSSLROOTCERT (asyncpg's
own, like libpq's) or PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE (Prefect's).
Prints {"user": current_user, "database": ..., "ssl": bool} on success; on failure the
exception's type and message (asyncpg and SQLAlchemy never put the password in them) and
exit status 1.
"""

import asyncio
import json
import os
import ssl
import sys
import urllib.parse

QUERY = ("select current_user, current_database(), "
         "(select ssl from pg_stat_ssl where pid = pg_backend_pid())")
TLS = "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_"
PREFECT_URL = "PREFECT_SERVER_DATABASE_CONNECTION_URL"


def truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def prefect_ssl_context():
    """The context Prefect 3 builds when ..._TLS_ENABLED is true (prefect/server/database/
    configurations.py), or None when it is not."""
    if not truthy(TLS + "ENABLED"):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=os.environ.get(TLS + "CA_FILE") or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = os.environ.get(TLS + "CHECK_HOSTNAME", "true").strip().lower() \
        in ("1", "true", "yes", "on")
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def result(row):
    return {"user": row[0], "database": row[1], "ssl": bool(row[2])}


async def asyncpg_url():
    import asyncpg
    conn = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=10)
    try:
        return result(await conn.fetchrow(QUERY))
    finally:
        await conn.close()


async def asyncpg_prefect():
    """An app without SQLAlchemy: the URL split with urllib, its query as keyword arguments
    (as SQLAlchemy's asyncpg dialect passes them), TLS from Prefect's settings."""
    import asyncpg
    u = urllib.parse.urlsplit(os.environ[PREFECT_URL])
    if u.scheme != "postgresql+asyncpg":
        raise ValueError("scheme is %r, not postgresql+asyncpg" % u.scheme)
    kw = dict(urllib.parse.parse_qsl(u.query))
    ctx = prefect_ssl_context()
    if ctx is not None:
        kw["ssl"] = ctx
    conn = await asyncpg.connect(host=u.hostname, port=u.port,
                                 user=urllib.parse.unquote(u.username),
                                 password=urllib.parse.unquote(u.password),
                                 database=urllib.parse.unquote(u.path[1:]), timeout=10, **kw)
    try:
        return result(await conn.fetchrow(QUERY))
    finally:
        await conn.close()


async def sqlalchemy_prefect():
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    connect_args = {"timeout": 10}
    ctx = prefect_ssl_context()
    if ctx is not None:
        connect_args["ssl"] = ctx
    engine = create_async_engine(os.environ[PREFECT_URL], connect_args=connect_args,
                                 pool_pre_ping=True)
    try:
        async with engine.connect() as conn:
            return result((await conn.execute(text(QUERY))).one())
    finally:
        await engine.dispose()


MODES = {"asyncpg-url": asyncpg_url, "asyncpg-prefect": asyncpg_prefect,
         "sqlalchemy-prefect": sqlalchemy_prefect}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        print("usage: pyclients.py {%s}" % "|".join(MODES), file=sys.stderr)
        return 2
    try:
        out = asyncio.run(MODES[sys.argv[1]]())
    except Exception as e:  # report, never a traceback with locals
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
