"""A long-running libpq client: one process that opens a new connection for every line
"connect" on stdin, the way a pooled app opens connections over its life, and prints one
JSON line per attempt:

    {"ok": true, "user": current_user, "ssl": bool, "process": pid}
    {"ok": false, "error": libpq's message, "process": pid}

It calls the system's libpq (libpq.so.5) directly, with no arguments: the connection comes
from the environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGSSLMODE, PGSSLROOTCERT) and the
password from PGPASSFILE, which libpq reads again for each new connection. So a .pgpass that
changes on disk (a mounted Secret the kubelet refreshes) is picked up with no restart.
libpq's messages never hold the password.
"""

import ctypes
import ctypes.util
import json
import os
import sys

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2

pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQstatus.restype = ctypes.c_int
pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
pq.PQerrorMessage.restype = ctypes.c_char_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQresultStatus.argtypes = [ctypes.c_void_p]
pq.PQresultStatus.restype = ctypes.c_int
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQgetvalue.restype = ctypes.c_char_p
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]

QUERY = (b"select current_user, "
         b"(select ssl from pg_stat_ssl where pid = pg_backend_pid())")


def attempt():
    conn = pq.PQconnectdb(b"")
    try:
        if pq.PQstatus(conn) != CONNECTION_OK:
            return {"ok": False, "error": pq.PQerrorMessage(conn).decode().strip()}
        res = pq.PQexec(conn, QUERY)
        try:
            if pq.PQresultStatus(res) != PGRES_TUPLES_OK:
                return {"ok": False, "error": pq.PQerrorMessage(conn).decode().strip()}
            return {"ok": True, "user": pq.PQgetvalue(res, 0, 0).decode(),
                    "ssl": pq.PQgetvalue(res, 0, 1) == b"t"}
        finally:
            pq.PQclear(res)
    finally:
        pq.PQfinish(conn)


for line in sys.stdin:
    if line.strip() == "connect":
        out = attempt()
        out["process"] = os.getpid()
        print(json.dumps(out), flush=True)
