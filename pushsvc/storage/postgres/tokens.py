"""`TokenStore` over `tokens` and its ordered topic index `token_topics`."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from pushsvc import models
from pushsvc.storage.base import Page, TargetQuery, TargetToken
from pushsvc.storage.postgres import codec
from pushsvc.storage.postgres.database import LONG_STATEMENT_S, Database

_Key = tuple[str, str, str]
"""(app_id, platform value, token)."""

# One statement registers a batch, so a RegisterToken is one round trip and
# needs no explicit transaction. Its parts run in a fixed order: `rotate`
# (the tokens the batch's devices held before, other than tokens the batch
# registers) must be done before `upsert` inserts, or a device's new token
# would meet its old one in tokens_by_device; `upsert` reads rotate's count
# for that. `untag` and `tag` then bring the topic index to the batch's topics.
_INPUT = (
    "unnest("
    + ", ".join(f"${n}::{'smallint' if c == 'bucket' else 'text'}[]" for n, c in enumerate((*codec.INPUT_COLUMNS, "topics"), 1))
    + f") AS i({', '.join(codec.INPUT_COLUMNS)}, topics)"
)
"""The batch as rows: one array parameter per `codec.INPUT_COLUMNS` (`codec.token_arrays`), then the topics as JSON."""
_NOW = f"${len(codec.INPUT_COLUMNS) + 2}"
_NEW_ROWS = f"""SELECT app_id, bucket, platform, token, user_id, ARRAY(SELECT json_array_elements_text(topics::json)), device_id,
       {codec.ATTRIBUTE_COLUMNS}, apns_environment, {_NOW}, {_NOW}"""
"""A new token's `codec.TOKEN_COLUMNS` from the input rows."""
_REFRESH = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in ("user_id", "topics", "device_id", *models.TOKEN_ATTRIBUTES, "apns_environment", "last_seen_at")
)
"""What registering a known token again changes."""

# One statement registers a batch, so a RegisterToken is one round trip and
# needs no explicit transaction. Its parts run in a fixed order: `rotate`
# (the tokens the batch's devices held before, other than tokens the batch
# registers) must be done before `upsert` inserts, or a device's new token
# would meet its old one in tokens_by_device; `upsert` reads rotate's count
# for that. `untag` and `tag` then bring the topic index to the batch's topics.
_UPSERT = f"""
WITH input AS (
    SELECT * FROM {_INPUT}
), rotate AS (
    DELETE FROM tokens t USING input i
    WHERE i.device_id <> '' AND t.app_id = i.app_id AND t.platform = i.platform AND t.device_id = i.device_id
      AND t.device_id <> ''
      AND NOT EXISTS (SELECT 1 FROM input f
                      WHERE f.app_id = t.app_id AND f.bucket = t.bucket AND f.platform = t.platform AND f.token = t.token)
    RETURNING 1
), upsert AS (
    INSERT INTO tokens ({codec.TOKEN_COLUMNS})
    {_NEW_ROWS}
    FROM input WHERE (SELECT count(*) FROM rotate) >= 0
    ORDER BY app_id, bucket, platform, token
    ON CONFLICT (app_id, bucket, platform, token) DO UPDATE SET {_REFRESH}
    RETURNING app_id, bucket, platform, token, topics, created_at, (xmax = 0) AS created
), untag AS (
    DELETE FROM token_topics tt USING upsert u
    WHERE tt.app_id = u.app_id AND tt.bucket = u.bucket AND tt.platform = u.platform AND tt.token = u.token
      AND NOT tt.topic = ANY(u.topics)
), tag AS (
    INSERT INTO token_topics (app_id, topic, bucket, platform, token)
    SELECT u.app_id, x.topic, u.bucket, u.platform, u.token FROM upsert u, unnest(u.topics) AS x(topic)
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT DO NOTHING
)
SELECT app_id, platform, token, created_at, created FROM upsert
"""

_REGISTER = (
    "SELECT o_created, o_created_at FROM register_token("
    + ", ".join(f"${n}" for n in range(1, len(codec.INPUT_COLUMNS) + 3))
    + ")"
)
"""register_token(the `codec.INPUT_COLUMNS`, topics, now)."""

_INSERT_NEW = f"""
INSERT INTO tokens ({codec.TOKEN_COLUMNS})
{_NEW_ROWS}
FROM {_INPUT}
ORDER BY app_id, bucket, platform, token
ON CONFLICT DO NOTHING
RETURNING app_id, bucket, platform, token, topics
"""

_DELETE_KEYS = """
DELETE FROM tokens t
USING unnest($1::text[], $2::smallint[], $3::text[], $4::text[]) AS d(app_id, bucket, platform, token)
WHERE t.app_id = d.app_id AND t.bucket = d.bucket AND t.platform = d.platform AND t.token = d.token
RETURNING t.app_id, t.platform, t.token
"""


def _key(reg: models.TokenRegistration) -> _Key:
    return (reg.app_id, reg.platform.value, reg.token)


def _topics_json(topics: Sequence[str]) -> str:
    return json.dumps(list(topics))


class PostgresTokenStore:
    """The token registry; per-token operations are primary-key operations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, reg: models.TokenRegistration, now: datetime) -> tuple[models.DeviceToken, bool]:
        """See `TokenStore.upsert`: one call of the schema's register_token()."""
        row = await self._db.run(
            lambda conn: conn.fetchrow(
                _REGISTER, *codec.token_values(reg), list(reg.topics), now,
            ),
            retry_unique=True,
        )
        token = models.DeviceToken.registered(reg, created_at=row[1], last_seen_at=now)
        return token, bool(row[0])

    async def upsert_many(self, regs: Sequence[models.TokenRegistration], now: datetime) -> list[bool]:
        """See `TokenStore.upsert_many`: one statement for the batch, as a rule."""
        if not regs:
            return []
        created, _ = await self._db.run(lambda conn: self._upsert_many(conn, regs, now), retry_unique=True)
        return created

    async def _upsert_many(
        self, conn: asyncpg.Connection, regs: Sequence[models.TokenRegistration], now: datetime
    ) -> tuple[list[bool], dict[_Key, datetime]]:
        try:
            return await self._apply(conn, regs, now)
        except asyncpg.exceptions.UniqueViolationError:
            if len(regs) == 1:
                raise
        # The batch holds a device that one of its tokens leaves and another
        # takes, in an order the set-based statement cannot follow (or it met
        # a racing registration): item by item, each sees the one before it,
        # as single upserts would.
        created: list[bool] = []
        created_at: dict[_Key, datetime] = {}
        for reg in regs:
            flags, at = await self._apply(conn, [reg], now)
            created += flags
            created_at.update(at)
        return created, created_at

    async def _apply(
        self, conn: asyncpg.Connection, regs: Sequence[models.TokenRegistration], now: datetime
    ) -> tuple[list[bool], dict[_Key, datetime]]:
        # Replay the batch in item order on the keys it touches, as single
        # upserts would: which registration of each token is last, and which
        # tokens a device rotated away within the batch (the statement itself
        # removes the tokens the devices held before the batch).
        final: dict[_Key, models.TokenRegistration] = {}
        holder: dict[_Key, _Key] = {}
        rotated_away: set[_Key] = set()
        for reg in regs:
            key = _key(reg)
            rotated_away.discard(key)
            final[key] = reg
            if reg.device_id:
                device = (reg.app_id, reg.platform.value, reg.device_id)
                before = holder.get(device)
                if before is not None and before != key and before in final and final[before].device_id == reg.device_id:
                    del final[before]
                    rotated_away.add(before)
                holder[device] = key
        existed_before: set[_Key] = set()
        if rotated_away:
            keys = sorted(rotated_away)
            rows = await conn.fetch(
                _DELETE_KEYS, [k[0] for k in keys], [models.token_bucket(k[2]) for k in keys], [k[1] for k in keys],
                [k[2] for k in keys],
            )
            existed_before.update((r[0], r[1], r[2]) for r in rows)
        rows = await conn.fetch(_UPSERT, *codec.token_arrays(final.values()), [_topics_json(r.topics) for r in final.values()], now)
        created_at: dict[_Key, datetime] = {}
        for row in rows:
            key = (row[0], row[1], row[2])
            created_at[key] = row[3]
            if not row[4]:
                existed_before.add(key)
        # A token's first item in the batch created it, if anything did.
        seen: set[_Key] = set()
        created: list[bool] = []
        for reg in regs:
            key = _key(reg)
            created.append(key not in seen and key not in existed_before)
            seen.add(key)
        return created, created_at

    async def insert_new(self, regs: Sequence[models.TokenRegistration], now: datetime) -> int:
        """See `TokenStore.insert_new`: one insert that skips every key already taken."""
        if not regs:
            return 0

        async def insert(conn: asyncpg.Connection) -> int:
            rows = await conn.fetch(_INSERT_NEW, *codec.token_arrays(regs), [_topics_json(r.topics) for r in regs], now)
            with_topics = [r for r in rows if r["topics"]]
            if with_topics:
                await conn.execute(
                    "INSERT INTO token_topics (app_id, topic, bucket, platform, token) "
                    "SELECT a, unnest(ARRAY(SELECT json_array_elements_text(t::json))), b, p, k "
                    "FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::text[]) AS i(a, b, p, k, t) "
                    "ON CONFLICT DO NOTHING",
                    [r["app_id"] for r in with_topics],
                    [r["bucket"] for r in with_topics],
                    [r["platform"] for r in with_topics],
                    [r["token"] for r in with_topics],
                    [json.dumps(list(r["topics"])) for r in with_topics],
                )
            return len(rows)

        return await self._db.run(insert, transaction=True)

    async def delete(self, app_id: str, platform: models.Platform, token: str) -> bool:
        """See `TokenStore.delete`."""
        done = await self._db.run(
            lambda conn: conn.fetchval(
                "DELETE FROM tokens WHERE app_id = $1 AND bucket = $2 AND platform = $3 AND token = $4 RETURNING true",
                app_id, models.token_bucket(token), platform.value, token,
            )
        )
        return bool(done)

    async def delete_invalid(
        self, app_id: str, platform: models.Platform, token: str, invalid_since: datetime | None
    ) -> bool:
        """See `TokenStore.delete_invalid`."""
        done = await self._db.run(
            lambda conn: conn.fetchval(
                "DELETE FROM tokens WHERE app_id = $1 AND bucket = $2 AND platform = $3 AND token = $4 "
                "AND ($5::timestamptz IS NULL OR last_seen_at < $5) RETURNING true",
                app_id, models.token_bucket(token), platform.value, token, invalid_since,
            )
        )
        return bool(done)

    async def get(self, app_id: str, platform: models.Platform, token: str) -> models.DeviceToken | None:
        """See `TokenStore.get`."""
        row = await self._db.run(
            lambda conn: conn.fetchrow(
                f"SELECT {codec.TOKEN_COLUMNS} FROM tokens WHERE app_id = $1 AND bucket = $2 AND platform = $3 AND token = $4",
                app_id, models.token_bucket(token), platform.value, token,
            )
        )
        return None if row is None else codec.device_token(row)

    async def prune(
        self, app_id: str, stale_before: datetime, platforms: frozenset[models.Platform], dry_run: bool
    ) -> int:
        """See `TokenStore.prune`. Served by `tokens_by_last_seen`."""
        where = "app_id = $1 AND last_seen_at < $2 AND ($3::text[] IS NULL OR platform = ANY($3))"
        sql = f"SELECT count(*) FROM tokens WHERE {where}" if dry_run else f"WITH d AS (DELETE FROM tokens WHERE {where} RETURNING 1) SELECT count(*) FROM d"
        n = await self._db.run(
            lambda conn: conn.fetchval(sql, app_id, stale_before, codec.platform_values(platforms), timeout=LONG_STATEMENT_S)
        )
        return int(n)

    async def count_targets(self, app_id: str, query: TargetQuery) -> int:
        """See `TokenStore.count_targets`."""
        if query.timezones is not None:
            return sum((await self.count_by_timezone(app_id, query)).values())
        platforms = codec.platform_values(query.platforms)
        if query.kind == "all":
            sql = "SELECT count(*) FROM tokens WHERE app_id = $1 AND ($2::text[] IS NULL OR platform = ANY($2))"
            args: tuple[Any, ...] = (app_id, platforms)
        elif query.kind == "users":
            sql = (
                "SELECT count(*) FROM tokens WHERE app_id = $1 AND user_id = ANY($3::text[]) AND user_id <> '' "
                "AND ($2::text[] IS NULL OR platform = ANY($2))"
            )
            args = (app_id, platforms, list(query.user_ids))
        elif query.kind == "topic":
            sql = (
                "SELECT count(*) FROM token_topics WHERE app_id = $1 AND topic = $3 "
                "AND ($2::text[] IS NULL OR platform = ANY($2))"
            )
            args = (app_id, platforms, query.topic)
        else:
            raise ValueError(f"unknown target query kind {query.kind!r}")
        # A whole app's count reads every one of its index entries.
        return int(await self._db.run(lambda conn: conn.fetchval(sql, *args, timeout=LONG_STATEMENT_S)))

    async def count_by_timezone(self, app_id: str, query: TargetQuery) -> dict[str, int]:
        """See `TokenStore.count_by_timezone`: the whole app from `tokens_by_timezone`, users and topics from theirs."""
        platforms = codec.platform_values(query.platforms)
        zones = None if query.timezones is None else sorted(query.timezones)
        where = "($2::text[] IS NULL OR t.platform = ANY($2)) AND ($3::text[] IS NULL OR t.timezone = ANY($3))"
        if query.kind == "all":
            sql = f"SELECT t.timezone, count(*) FROM tokens t WHERE t.app_id = $1 AND {where} GROUP BY t.timezone"
            args: tuple[Any, ...] = (app_id, platforms, zones)
        elif query.kind == "users":
            sql = (
                f"SELECT t.timezone, count(*) FROM tokens t WHERE t.app_id = $1 AND t.user_id = ANY($4::text[]) "
                f"AND t.user_id <> '' AND {where} GROUP BY t.timezone"
            )
            args = (app_id, platforms, zones, list(query.user_ids))
        elif query.kind == "topic":
            sql = (
                "SELECT t.timezone, count(*) FROM token_topics tt JOIN tokens t USING (app_id, bucket, platform, token) "
                f"WHERE tt.app_id = $1 AND tt.topic = $4 AND {where} GROUP BY t.timezone"
            )
            args = (app_id, platforms, zones, query.topic)
        else:
            raise ValueError(f"unknown target query kind {query.kind!r}")
        rows = await self._db.run(lambda conn: conn.fetch(sql, *args, timeout=LONG_STATEMENT_S))
        return {r[0]: int(r[1]) for r in rows}

    async def scan_targets(
        self, app_id: str, query: TargetQuery, buckets: tuple[int, int], after: Any, batch_size: int
    ) -> AsyncGenerator[list[TargetToken], None]:
        """See `TokenStore.scan_targets`: keyset pages in (bucket, platform, token) order, one statement each."""
        bound = codec.ref_bound(after) or (buckets[0], "", "")
        platforms = codec.platform_values(query.platforms)
        zones = None if query.timezones is None else sorted(query.timezones)
        if query.kind == "all" and zones is not None:
            # A local-time partition: served by tokens_by_timezone, one range per zone of its group.
            sql = (
                f"SELECT {codec.TARGET_COLUMNS} FROM tokens WHERE app_id = $1 AND timezone = ANY($8::text[]) "
                "AND bucket < $2 AND (bucket, platform, token) > ($3, $4, $5) "
                "AND ($6::text[] IS NULL OR platform = ANY($6)) ORDER BY bucket, platform, token LIMIT $7"
            )
            extra: tuple[Any, ...] = (zones,)
        elif query.kind == "all":
            sql = (
                f"SELECT {codec.TARGET_COLUMNS} FROM tokens WHERE app_id = $1 AND bucket < $2 "
                "AND (bucket, platform, token) > ($3, $4, $5) AND ($6::text[] IS NULL OR platform = ANY($6)) "
                "ORDER BY bucket, platform, token LIMIT $7"
            )
            extra = ()
        elif query.kind == "users":
            sql = (
                f"SELECT {codec.TARGET_COLUMNS} FROM tokens WHERE app_id = $1 AND bucket < $2 "
                "AND (bucket, platform, token) > ($3, $4, $5) AND ($6::text[] IS NULL OR platform = ANY($6)) "
                "AND user_id = ANY($8::text[]) AND user_id <> '' "
                "AND ($9::text[] IS NULL OR timezone = ANY($9)) ORDER BY bucket, platform, token LIMIT $7"
            )
            extra = (list(query.user_ids), zones)
        elif query.kind == "topic":
            cols = ", ".join(f"t.{c.strip()}" for c in codec.TARGET_COLUMNS.split(","))
            sql = (
                f"SELECT {cols} FROM token_topics tt JOIN tokens t USING (app_id, bucket, platform, token) "
                "WHERE tt.app_id = $1 AND tt.topic = $8 AND tt.bucket < $2 "
                "AND (tt.bucket, tt.platform, tt.token) > ($3, $4, $5) AND ($6::text[] IS NULL OR tt.platform = ANY($6)) "
                "AND ($9::text[] IS NULL OR t.timezone = ANY($9)) ORDER BY tt.bucket, tt.platform, tt.token LIMIT $7"
            )
            extra = (query.topic, zones)
        else:
            raise ValueError(f"unknown target query kind {query.kind!r}")
        async def page_after(conn: asyncpg.Connection, b: tuple[int, str, str]) -> list[Any]:
            return list(await conn.fetch(sql, app_id, buckets[1], b[0], b[1], b[2], platforms, batch_size, *extra))

        while True:
            rows = await self._db.run(functools.partial(page_after, b=bound))
            if rows:
                page = [codec.target(r) for r in rows]
                yield page
                bound = page[-1].ref
            if len(rows) < batch_size:
                return

    async def lookup(
        self, app_id: str, devices: Sequence[models.Device]
    ) -> dict[tuple[models.Platform, str], TargetToken]:
        """See `TokenStore.lookup`: primary-key reads of the listed devices."""
        if not devices:
            return {}
        keys = sorted({(models.token_bucket(d.token), d.platform.value, d.token) for d in devices})
        rows = await self._db.run(
            lambda conn: conn.fetch(
                f"SELECT {', '.join('t.' + c.strip() for c in codec.TARGET_COLUMNS.split(','))} FROM tokens t "
                "JOIN unnest($2::smallint[], $3::text[], $4::text[]) AS d(bucket, platform, token) "
                "USING (bucket, platform, token) WHERE t.app_id = $1",
                app_id, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            )
        )
        targets = [codec.target(r) for r in rows]
        return {(t.platform, t.token): t for t in targets}

    async def list(self, where: models.TokenFilter, after: tuple[str, ...] | None, limit: int) -> Page[models.DeviceToken]:
        """See `TokenStore.list`: a keyset page in (bucket, platform, token) order.

        Served by the primary key, `tokens_by_user` with a user, and
        `token_topics`' primary key with a topic.
        """
        bound = codec.token_bound(after) if after is not None else (-1, "", "")
        cols = ", ".join(f"t.{c.strip()}" for c in codec.TOKEN_COLUMNS.split(","))
        args: list[Any] = [where.app_id, *bound]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.topic:
            sql = [
                f"SELECT {cols} FROM token_topics k JOIN tokens t USING (app_id, bucket, platform, token) "
                f"WHERE k.app_id = $1 AND k.topic = {arg(where.topic)} AND (k.bucket, k.platform, k.token) > ($2, $3, $4)"
            ]
            order = "k.bucket, k.platform, k.token"
        else:
            sql = [f"SELECT {cols} FROM tokens t WHERE t.app_id = $1 AND (t.bucket, t.platform, t.token) > ($2, $3, $4)"]
            order = "t.bucket, t.platform, t.token"
        if where.user_id:
            # The literal lets the planner prove tokens_by_user's predicate for any parameter value.
            sql.append(f"AND t.user_id = {arg(where.user_id)} AND t.user_id <> ''")
        if where.platform is not None:
            sql.append(f"AND t.platform = {arg(where.platform.value)}")
        if where.last_seen_before is not None:
            sql.append(f"AND t.last_seen_at < {arg(where.last_seen_before)}")
        if where.last_seen_after is not None:
            sql.append(f"AND t.last_seen_at >= {arg(where.last_seen_after)}")
        sql.append(f"ORDER BY {order} LIMIT {arg(limit + 1)}")
        rows = await self._db.run(lambda conn: conn.fetch(" ".join(sql), *args))
        items = [codec.device_token(r) for r in rows[:limit]]
        return Page(items, codec.token_position(items[-1]) if len(rows) > limit else None)
