"""Host side of the db capability (`wruntime:db/database`): PostgreSQL through asyncpg.

A module reaches only its namespace's place in PostgreSQL: every connection logs in as the
namespace role `wr_ns_<ns>` (password: the namespace secret `wr-db-password`, handed over at
registration; until it arrives every call fails with `connection`), with search_path = the
namespace schema and `statement_timeout` = [database] statement_timeout_ms. The role owns
only its schema and is a member of no other role, so neither a schema-qualified name, `SET
search_path` nor `SET ROLE` reaches another namespace (runtime/db_provision.py).

One asyncpg pool per namespace per worker process, made on first use on the worker's host
loop (host_loop.py), at most [database] max_connections connections. Host functions are
direct C callbacks (host_abi.add_direct_func): arguments are read and `list<row>` results
built straight from the C values.

Limits per request: [database] max_transactions open transactions (64) and max_cursors open
cursors (256); a request never holds more connections than the pool has (one more is
`too-many`, not a wait for itself). One result (query, or one next-batch) carries at most
MAX_ROWS rows (`too-many`) and about MAX_RESULT_BYTES bytes (`too-large`): big results go
through cursors, which give at most MAX_BATCH rows per batch. What a request leaves open is
rolled back when it ends and its connections go back to the pool clean.

The request deadline: a query still running when it passes is cancelled on the server, its
connection rolled back (or closed when that fails), and the guest traps: the request answers
504 naming the deadline (the guest could do nothing useful with an error any more).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
from asyncpg.exceptions import _base as asyncpg_base  # type: ignore[import-untyped]
from wasmtime import WasmtimeError
from wasmtime.component import ResourceType

from runtime.capability_config import db_role
from runtime.engine import db_values
from runtime.engine.capabilities import DB_PASSWORD_SECRET
from runtime.engine.db_values import DbFailure
from runtime.engine.db_wit import read_params, set_error, set_result, set_rows, set_u64
from runtime.engine.guest_run import GuestRun
from runtime.engine.host_abi import add_direct_func, read_str, resource_rep, set_own_resource
from runtime.engine.host_loop import DeadlineExceeded, host_loop

INTERFACE = "wruntime:db/database@0.4.0"
TX_RESOURCE = 0xDB01  # our ids for the host resource types
CURSOR_RESOURCE = 0xDB02
MAX_ROWS = 10_000
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_BATCH = 1_000
CLEANUP_SECS = 5.0  # rolling back what a request left open, after its deadline if need be

log = logging.getLogger(__name__)
_reps = itertools.count(1)
T = TypeVar("T")


def _sqlstate_message(exc: Any) -> str:
    state = getattr(exc, "sqlstate", None)
    text = f"{state}: {exc}" if state else f"{type(exc).__name__}: {exc}"
    detail = getattr(exc, "detail", None)
    return f"{text} ({detail})" if detail else text


def classify(exc: BaseException) -> DbFailure:
    """The db-error an exception from asyncpg (or the network) is for the guest."""
    if isinstance(exc, DbFailure):
        return exc
    if isinstance(exc, db_values.BadParameter):
        return DbFailure("invalid-parameter", str(exc))
    if isinstance(exc, asyncpg_base.DataError) or (
        # asyncpg could not encode an argument: it raises that client-side, as a 22000
        isinstance(exc, asyncpg.DataError) and str(exc).startswith("invalid input for query")
    ):
        return DbFailure("invalid-parameter", str(exc))
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        message = _sqlstate_message(exc)
        if state.startswith("23"):
            return DbFailure("constraint-violation", (exc.constraint_name or "", message))
        if state == "57014":  # query_canceled: statement_timeout
            return DbFailure("timeout", message)
        if state.startswith("42") and state != "42501":
            return DbFailure("syntax", message)
        if state.startswith(("08", "28", "53", "57P")):
            return DbFailure("connection", message)
        return DbFailure("query", message)
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        if "argument" in text:  # "the server expects 2 arguments for this query, 1 was passed"
            return DbFailure("invalid-parameter", text)
        if "closed" in text or "connection" in text:
            return DbFailure("connection", text)
        return DbFailure("query", text)
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.ConnectionDoesNotExistError)):
        return DbFailure("connection", f"{type(exc).__name__}: {exc}")
    return DbFailure("query", f"{type(exc).__name__}: {exc}")


# ---- per request --------------------------------------------------------------------------


@dataclass
class Tx:
    """An open transaction: it holds its connection until commit, rollback or drop."""

    pool: Any
    conn: Any
    cursors: set[int] = field(default_factory=set)
    done: bool = False


@dataclass
class Cursor:
    tx: Tx
    cursor: Any
    columns: list[tuple[str, str | None]]
    owns_tx: bool  # query-stream outside a transaction: its own, ended with the cursor
    exhausted: bool = False


class RequestDb:
    def __init__(self, run: GuestRun) -> None:
        self.run = run
        self.txs: dict[int, Tx] = {}
        self.cursors: dict[int, Cursor] = {}
        self.ended: set[int] = set()  # cursors whose transaction ended (an error, not a trap)
        # (pool, connection) of query/execute outside transactions: taken at the first one,
        # given back (reset) when the request ends, so a query costs no reset round trip
        self.session: tuple[Any, Any] | None = None

    def held(self) -> int:
        """Connections this request holds (one per live transaction, and its session)."""
        return (
            sum(1 for tx in self.txs.values() if not tx.done)
            + sum(1 for c in self.cursors.values() if c.owns_tx and not c.tx.done)
            + (self.session is not None)
        )


# ---- the binding ---------------------------------------------------------------------------


class DbBinding:
    """Links `wruntime:db/database` into a worker's Linker; pools per namespace."""

    name = "db"

    @staticmethod
    def settings(node_config: Mapping[str, Any]) -> dict[str, Any]:
        """What a worker needs from engine.toml's [database] (the URL's user and password are
        the admin's, for `wrctl apply`: engines log in as the namespace role instead)."""
        section = dict(node_config.get("database") or {})
        parts = urlsplit(str(section["url"]))
        return {
            "host": parts.hostname,
            "port": parts.port or 5432,
            "database": parts.path.strip("/"),
            "max_connections": int(section.get("max_connections", 4)),
            "statement_timeout_ms": int(section.get("statement_timeout_ms", 5000)),
            "max_transactions": int(section.get("max_transactions", 64)),
            "max_cursors": int(section.get("max_cursors", 256)),
        }

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.cfg = dict(settings)
        self.max_connections = int(settings["max_connections"])
        self.max_transactions = int(settings["max_transactions"])
        self.max_cursors = int(settings["max_cursors"])
        self._secrets: dict[str, dict[str, str]] = {}
        self._pools: dict[str, tuple[str, Any]] = {}  # namespace -> (password, pool)
        self._pool_lock: asyncio.Lock | None = None  # made on the host loop
        self._local = threading.local()
        self._unmapped: set[int] = set()
        self._tx_type = ResourceType.host(TX_RESOURCE)
        self._cursor_type = ResourceType.host(CURSOR_RESOURCE)

    def set_secrets(self, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self._secrets = {ns: dict(kv) for ns, kv in secrets.items()}

    # -- lifecycle -------------------------------------------------------------------------

    def link(self, root: Any) -> None:
        with root.add_instance(INTERFACE) as li:
            li.add_resource("transaction", self._tx_type, self._guarded_drop(self._drop_tx))
            li.add_resource("row-cursor", self._cursor_type, self._guarded_drop(self._drop_cursor))
            add_direct_func(li, "query", self._query)
            add_direct_func(li, "execute", self._execute)
            add_direct_func(li, "query-stream", self._query_stream)
            add_direct_func(li, "begin-transaction", self._begin)
            add_direct_func(li, "[method]transaction.query", self._tx_query)
            add_direct_func(li, "[method]transaction.execute", self._tx_execute)
            add_direct_func(li, "[method]transaction.query-stream", self._tx_query_stream)
            add_direct_func(li, "[method]transaction.commit", self._commit)
            add_direct_func(li, "[method]transaction.rollback", self._rollback)
            add_direct_func(li, "[method]row-cursor.next-batch", self._next_batch)

    def begin(self, run: GuestRun) -> None:
        self._local.req = RequestDb(run)

    def end(self, run: GuestRun) -> None:
        """Roll back what the request left open; its connections go back to the pool."""
        req: RequestDb | None = getattr(self._local, "req", None)
        self._local.req = None
        if req is None:
            return
        open_txs = [tx for tx in req.txs.values() if not tx.done]
        open_txs += [c.tx for c in req.cursors.values() if c.owns_tx and not c.tx.done]
        if req.session is not None:
            open_txs.append(Tx(*req.session, done=True))  # only given back
            req.session = None
        if open_txs:
            try:
                host_loop().run(self._finish_all(open_txs), CLEANUP_SECS + 1)
            except Exception as exc:  # the pool replaces what it could not get back
                log.warning("db: cleaning up after %s: %s", run.spec.key, exc)
        req.txs.clear()
        req.cursors.clear()

    def close(self) -> None:
        pools = [pool for _, pool in self._pools.values()]
        self._pools.clear()
        if pools:
            try:
                host_loop().run(_close_pools(pools), CLEANUP_SECS)
            except Exception as exc:
                log.warning("db: closing pools: %s", exc)

    # -- pools -----------------------------------------------------------------------------

    async def _pool(self, namespace: str) -> Any:
        password = self._secrets.get(namespace, {}).get(DB_PASSWORD_SECRET)
        if password is None:
            raise DbFailure(
                "connection",
                f"the database password of namespace {namespace} (namespace secret "
                f"{DB_PASSWORD_SECRET!r}) has not reached this engine yet; `wrctl apply` "
                "provisions it and the engine gets it at registration",
            )
        known = self._pools.get(namespace)
        if known is not None and known[0] == password:
            return known[1]
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            known = self._pools.get(namespace)
            if known is not None and known[0] == password:
                return known[1]
            role = db_role(namespace)
            pool = await asyncpg.create_pool(
                host=self.cfg["host"],
                port=self.cfg["port"],
                database=self.cfg["database"],
                user=role,
                password=password,
                min_size=0,
                max_size=self.max_connections,
                server_settings={
                    "search_path": role,
                    "statement_timeout": str(self.cfg["statement_timeout_ms"]),
                    "application_name": "wr-engine",
                },
                init=_init_connection,
            )
            self._pools[namespace] = (password, pool)
            if known is not None:  # the password changed: the old pool's logins are stale
                asyncio.get_running_loop().create_task(known[1].close())
            return pool

    # -- plumbing --------------------------------------------------------------------------

    def _req(self) -> RequestDb:
        req: RequestDb | None = getattr(self._local, "req", None)
        if req is None:
            raise WasmtimeError("db used outside a request")
        return req

    def _wait(self, req: RequestDb, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the host loop within the request's deadline; past it, trap (504)."""
        try:
            return host_loop().run_for(req.run, coro)
        except DeadlineExceeded:
            req.run.stopped = (504, req.run.deadline_message())
            raise WasmtimeError(req.run.deadline_message()) from None

    def _answer(self, results: Any, work: Callable[[], Callable[[Any], None] | None]) -> None:
        """Write result<T, db-error>: ok with what work() returns to fill T, else the error."""
        try:
            fill = work()
        except WasmtimeError:
            raise
        except Exception as exc:
            failure = classify(exc)
            set_result(results[0], False, lambda v: set_error(v, failure))
            return
        set_result(results[0], True, fill)

    def _columns(self, stmt: Any) -> list[tuple[str, str | None]]:
        columns = []
        for attr in stmt.get_attributes():
            case = db_values.COLUMN_CASES.get(attr.type.oid)
            if case is None and attr.type.oid not in self._unmapped:
                self._unmapped.add(attr.type.oid)
                log.warning(
                    "db: result columns of type %s (oid %d) are returned as null",
                    attr.type.name,
                    attr.type.oid,
                )
            columns.append((attr.name, case))
        return columns

    def _rows(self, columns: list[tuple[str, str | None]], records: list[Any]) -> list[list[Any]]:
        rows = []
        size = 0
        for record in records:
            row: list[Any] = []
            for (_, case), value in zip(columns, record, strict=True):
                if case is None or value is None:
                    row.append(None)
                    continue
                row.append(db_values.from_column(case, value))
                size += db_values.value_size(value)
            if size > MAX_RESULT_BYTES:
                raise DbFailure(
                    "too-large",
                    f"the result is over {MAX_RESULT_BYTES >> 20} MiB (read big results "
                    "with query-stream and next-batch)",
                )
            rows.append(row)
        return rows

    def _too_many_rows(self) -> DbFailure:
        return DbFailure(
            "too-many",
            f"the result has over {MAX_ROWS} rows (read big results with query-stream and "
            "next-batch)",
        )

    # -- statements ------------------------------------------------------------------------

    async def _fetch(
        self, conn: Any, sql: str, params: list[Any]
    ) -> tuple[list[tuple[str, str | None]], list[Any]]:
        """The columns and at most MAX_ROWS + 1 records (a bigger result is not buffered).
        asyncpg's public API has neither the cached prepare nor an execute with a row
        limit; both are one call into its protocol (pinned asyncpg version, tested)."""
        stmt = await conn._prepare(sql, use_cache=True)
        records = await stmt._PreparedStatement__bind_execute(params, MAX_ROWS + 1, None)
        return self._columns(stmt), records

    async def _session(self, req: RequestDb) -> Any:
        """The request's connection for statements outside transactions."""
        if req.session is None:
            if req.held() >= self.max_connections:
                raise self._pool_full()
            pool = await self._pool(req.run.spec.namespace)
            req.session = (pool, await pool.acquire())
        return req.session[1]

    def _run_query(self, req: RequestDb, tx: Tx | None, sql: str, params: list[Any]) -> Any:
        async def on_pool() -> tuple[list[tuple[str, str | None]], list[Any]]:
            return await self._fetch(await self._session(req), sql, params)

        columns, records = self._wait(
            req, self._fetch(tx.conn, sql, params) if tx is not None else on_pool()
        )
        if len(records) > MAX_ROWS:
            raise self._too_many_rows()
        rows = self._rows(columns, records)
        return lambda v: set_rows(v, columns, rows)

    def _run_execute(self, req: RequestDb, tx: Tx | None, sql: str, params: list[Any]) -> Any:
        async def on_pool() -> str:
            status: str = await (await self._session(req)).execute(sql, *params)
            return status

        status = self._wait(req, tx.conn.execute(sql, *params) if tx is not None else on_pool())
        last = str(status).rsplit(" ", 1)[-1]
        count = int(last) if last.isdigit() else 0
        return lambda v: set_u64(v, count)

    def _query(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req = self._req()
        sql, params = read_str(args[0]), args[1]
        self._answer(results, lambda: self._run_query(req, None, sql, read_params(params)))

    def _execute(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req = self._req()
        sql, params = read_str(args[0]), args[1]
        self._answer(results, lambda: self._run_execute(req, None, sql, read_params(params)))

    # -- transactions ----------------------------------------------------------------------

    def _check_room(self, req: RequestDb) -> None:
        live = req.held()
        if live - (req.session is not None) >= self.max_transactions:
            raise DbFailure(
                "too-many",
                f"over {self.max_transactions} open transactions in one request "
                "([database] max_transactions; commit or roll back the ones you are done with)",
            )
        if live >= self.max_connections:
            raise self._pool_full()

    def _pool_full(self) -> DbFailure:
        return DbFailure(
            "too-many",
            f"the request already holds all {self.max_connections} connections of its pool "
            "(open transactions, and one for statements outside them; [database] "
            "max_connections)",
        )

    async def _open_tx(self, namespace: str) -> Tx:
        pool = await self._pool(namespace)
        conn = await pool.acquire()
        try:
            await conn.execute("BEGIN")
        except BaseException:
            await _give_back(pool, conn)
            raise
        return Tx(pool, conn)

    def _begin(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req = self._req()

        def work() -> Callable[[Any], None]:
            self._check_room(req)
            tx = self._wait(req, self._open_tx(req.run.spec.namespace))
            rep = next(_reps)
            req.txs[rep] = tx
            return lambda v: set_own_resource(context, v, rep, TX_RESOURCE)

        self._answer(results, work)

    def _tx(self, context: Any, handle: Any) -> Tx:
        tx = self._req().txs.get(resource_rep(context, handle))
        if tx is None:
            raise WasmtimeError("db: unknown transaction")
        return tx

    def _live_tx(self, tx: Tx) -> Tx:
        if tx.done:
            raise DbFailure("query", "the transaction is already committed or rolled back")
        return tx

    def _tx_query(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req, tx = self._req(), self._tx(context, args[0])
        sql, params = read_str(args[1]), args[2]
        self._answer(
            results, lambda: self._run_query(req, self._live_tx(tx), sql, read_params(params))
        )

    def _tx_execute(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req, tx = self._req(), self._tx(context, args[0])
        sql, params = read_str(args[1]), args[2]
        self._answer(
            results, lambda: self._run_execute(req, self._live_tx(tx), sql, read_params(params))
        )

    def _end_tx(self, context: Any, args: Any, results: Any, commit: bool) -> None:
        req, tx = self._req(), self._tx(context, args[0])

        def work() -> None:
            self._close_cursors_of(req, tx)
            self._wait(req, _finish(self._live_tx(tx), commit))

        self._answer(results, work)

    def _commit(self, context: Any, args: Any, _n: int, results: Any) -> None:
        self._end_tx(context, args, results, commit=True)

    def _rollback(self, context: Any, args: Any, _n: int, results: Any) -> None:
        self._end_tx(context, args, results, commit=False)

    def _close_cursors_of(self, req: RequestDb, tx: Tx) -> None:
        for rep in tx.cursors:
            req.cursors.pop(rep, None)
        req.ended.update(tx.cursors)
        tx.cursors.clear()

    def _drop_tx(self, rep: int) -> None:
        req: RequestDb | None = getattr(self._local, "req", None)
        tx = req.txs.pop(rep, None) if req is not None else None
        if req is None or tx is None:
            return
        self._close_cursors_of(req, tx)
        if not tx.done:  # dropped without commit: rolled back
            self._wait(req, _finish(tx, commit=False))

    # -- cursors ---------------------------------------------------------------------------

    def _open_cursor(
        self, context: Any, results: Any, tx: Tx | None, args: Any, first: int
    ) -> None:
        req = self._req()
        sql, params = read_str(args[first]), args[first + 1]

        def work() -> Callable[[Any], None]:
            values = read_params(params)
            if len(req.cursors) >= self.max_cursors:
                raise DbFailure(
                    "too-many",
                    f"over {self.max_cursors} open cursors in one request ([database] "
                    "max_cursors; drop the cursors you are done with)",
                )
            if tx is None:
                self._check_room(req)
            owner = self._live_tx(tx) if tx is not None else None

            async def open_it() -> tuple[Tx, Any, Any]:
                use = owner or await self._open_tx(req.run.spec.namespace)
                try:
                    stmt = await use.conn._prepare(sql, use_cache=True)
                    cursor = await stmt.cursor(*values)
                except BaseException:
                    if owner is None:
                        await _finish(use, commit=False)
                    raise
                return use, stmt, cursor

            used, stmt, cursor = self._wait(req, open_it())
            rep = next(_reps)
            req.cursors[rep] = Cursor(used, cursor, self._columns(stmt), owns_tx=owner is None)
            used.cursors.add(rep)
            return lambda v: set_own_resource(context, v, rep, CURSOR_RESOURCE)

        self._answer(results, work)

    def _query_stream(self, context: Any, args: Any, _n: int, results: Any) -> None:
        self._open_cursor(context, results, None, args, 0)

    def _tx_query_stream(self, context: Any, args: Any, _n: int, results: Any) -> None:
        self._open_cursor(context, results, self._tx(context, args[0]), args, 1)

    def _next_batch(self, context: Any, args: Any, _n: int, results: Any) -> None:
        req = self._req()
        rep = resource_rep(context, args[0])
        cursor = req.cursors.get(rep)
        wanted = max(1, min(int(args[1].of.u32), MAX_BATCH))
        if cursor is None:
            if rep not in req.ended:  # a handle this request never had
                raise WasmtimeError("db: unknown row cursor")
            ended = DbFailure(
                "query", "the cursor's transaction is already committed or rolled back"
            )
            set_result(results[0], False, lambda v: set_error(v, ended))
            return

        def work() -> Callable[[Any], None]:
            if cursor.exhausted:
                return lambda v: set_rows(v, cursor.columns, [])
            self._live_tx(cursor.tx)
            records = self._wait(req, cursor.cursor.fetch(wanted))
            rows = self._rows(cursor.columns, records)
            if len(records) < wanted:
                cursor.exhausted = True
                if cursor.owns_tx:  # its own read-only transaction is done
                    self._wait(req, _finish(cursor.tx, commit=True))
            return lambda v: set_rows(v, cursor.columns, rows)

        self._answer(results, work)

    def _drop_cursor(self, rep: int) -> None:
        req: RequestDb | None = getattr(self._local, "req", None)
        cursor = req.cursors.pop(rep, None) if req is not None else None
        if req is None or cursor is None:
            if req is not None:
                req.ended.discard(rep)
            return
        cursor.tx.cursors.discard(rep)
        if cursor.owns_tx and not cursor.tx.done:
            self._wait(req, _finish(cursor.tx, commit=False))

    def _guarded_drop(self, drop: Callable[[int], None]) -> Callable[[Any, int], None]:
        def call(_store: Any, rep: int) -> None:
            try:
                drop(rep)
            except WasmtimeError:
                raise
            except Exception as exc:
                raise WasmtimeError(f"db: {type(exc).__name__}: {exc}") from None

        return call

    async def _finish_all(self, txs: list[Tx]) -> None:
        await asyncio.gather(
            *(_finish(tx, False) if not tx.done else _give_back(tx.pool, tx.conn) for tx in txs),
            return_exceptions=True,
        )


async def _init_connection(conn: Any) -> None:
    for name, (encoder, decoder) in db_values.CODECS.items():
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=encoder, decoder=decoder, format="tuple"
        )
    encode, decode = db_values.NUMERIC_CODEC
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=encode, decoder=decode, format="text"
    )


async def _finish(tx: Tx, commit: bool) -> None:
    """Commit or roll back, and give the connection back (closed when its state is unsure).
    A COMMIT of a transaction an error aborted rolls back: that is an error for the guest."""
    if tx.done:
        return
    tx.done = True
    try:
        status = await asyncio.wait_for(
            tx.conn.execute("COMMIT" if commit else "ROLLBACK"), CLEANUP_SECS
        )
        if commit and status == "ROLLBACK":
            raise DbFailure(
                "query", "the transaction was aborted by an earlier error and is rolled back"
            )
    finally:
        await _give_back(tx.pool, tx.conn)


async def _give_back(pool: Any, conn: Any) -> None:
    """Release to the pool, which waits for a cancelled statement to wind down, rolls back
    and resets the session; a connection it cannot get back is closed."""
    try:
        await asyncio.wait_for(pool.release(conn), CLEANUP_SECS)
    except BaseException:
        conn.terminate()
        raise


async def _close_pools(pools: list[Any]) -> None:
    await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)
