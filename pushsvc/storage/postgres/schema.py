"""The PostgreSQL schema: versioned migrations, and the receipt log's time partitions.

Migrations are applied in order, each in its own transaction, under a
transaction-scoped advisory lock, so replicas that start together apply
each one exactly once; `schema_migrations` records what is applied. They run
at start (`PostgresStores.prepare`) and through `pushsvc migrate`. Nothing
here needs a superuser or an extension: plain tables, B-tree indexes,
declarative partitioning and advisory locks, which managed PostgreSQL
services all allow to a database owner.

Every query the adapter sends is served by one of these indexes;
`tests/storage/test_postgres_plans.py` checks that with EXPLAIN at 100k rows.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

log = logging.getLogger("pushsvc.storage")

LONG_STATEMENT_S = 3600.0
"""A migration may rewrite a large table."""

# Any fixed number: it names the lock every replica takes while migrating.
MIGRATION_LOCK = 0x70757368


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tokens, notifications, partitions, counters and the receipt log",
        """
        CREATE TABLE tokens (
            app_id text NOT NULL,
            bucket smallint NOT NULL,
            platform text NOT NULL,
            token text NOT NULL,
            user_id text NOT NULL DEFAULT '',
            topics text[] NOT NULL DEFAULT '{}',
            device_id text NOT NULL DEFAULT '',
            locale text NOT NULL DEFAULT '',
            timezone text NOT NULL DEFAULT '',
            app_version text NOT NULL DEFAULT '',
            apns_environment text NOT NULL DEFAULT 'production',
            created_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            -- (app, platform, token) is the identity; the bucket is a function of
            -- the token, and leading with it makes a partition's targets one range.
            PRIMARY KEY (app_id, bucket, platform, token)
        );
        CREATE INDEX tokens_by_user ON tokens (app_id, user_id, bucket, platform, token) WHERE user_id <> '';
        CREATE INDEX tokens_by_last_seen ON tokens (app_id, last_seen_at);
        -- A device holds one token per app and platform: rotation deletes the
        -- others, and this makes two racing registrations of one device collide.
        CREATE UNIQUE INDEX tokens_by_device ON tokens (app_id, platform, device_id) WHERE device_id <> '';

        CREATE TABLE notifications (
            notification_id text PRIMARY KEY,
            app_id text NOT NULL,
            state text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            completed_at timestamptz,
            send_at timestamptz,
            expires_at timestamptz,
            targeted bigint NOT NULL DEFAULT 0,
            delivered bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            invalid_tokens bigint NOT NULL DEFAULT 0,
            expired bigint NOT NULL DEFAULT 0,
            vanished bigint NOT NULL DEFAULT 0,
            partitions_total integer NOT NULL,
            partitions_done integer NOT NULL DEFAULT 0,
            receipt_seq bigint NOT NULL DEFAULT 0,
            -- The receipt partitions (days) that hold this notification's receipts.
            receipt_days integer[] NOT NULL DEFAULT '{}',
            -- json, not jsonb: the rendered bodies keep their key order byte for byte.
            rendered json NOT NULL,
            target_kind text NOT NULL DEFAULT '',
            query jsonb,
            error text NOT NULL DEFAULT '',
            idempotency_key text NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX notifications_by_idempotency_key ON notifications (app_id, idempotency_key)
            WHERE idempotency_key <> '';
        CREATE INDEX notifications_unfinished ON notifications (state)
            WHERE state IN ('queued', 'scheduled', 'running');

        CREATE TABLE partitions (
            partition_id text PRIMARY KEY,
            notification_id text NOT NULL REFERENCES notifications ON DELETE CASCADE,
            app_id text NOT NULL,
            part_index integer NOT NULL,
            bucket_lo integer NOT NULL,
            bucket_hi integer NOT NULL,
            devices jsonb NOT NULL DEFAULT '[]',
            checkpoint jsonb,
            created_at timestamptz NOT NULL,
            done boolean NOT NULL DEFAULT false,
            owner text,
            lease_expires_at timestamptz NOT NULL,
            claims integer NOT NULL DEFAULT 0,
            finished_at timestamptz,
            finished_by text
        );
        CREATE INDEX partitions_claimable ON partitions (lease_expires_at) WHERE NOT done;
        CREATE INDEX partitions_by_notification ON partitions (notification_id, part_index);
        CREATE INDEX partitions_by_owner ON partitions (owner) WHERE NOT done;

        CREATE TABLE receipt_counters (
            app_id text PRIMARY KEY,
            seq bigint NOT NULL
        );

        -- The receipt log, partitioned by the day its receipts expire: retention
        -- drops whole partitions instead of deleting rows.
        CREATE TABLE receipts (
            app_id text NOT NULL,
            notification_id text NOT NULL,
            seq bigint NOT NULL,
            nseq bigint NOT NULL,
            expires_day integer NOT NULL,
            platform text NOT NULL,
            token text NOT NULL,
            filler boolean NOT NULL DEFAULT false,
            user_id text NOT NULL DEFAULT '',
            status text,
            provider_message_id text NOT NULL DEFAULT '',
            provider_status integer NOT NULL DEFAULT 0,
            reason text NOT NULL DEFAULT '',
            attempts integer NOT NULL DEFAULT 0,
            token_removed boolean NOT NULL DEFAULT false,
            at timestamptz,
            expires_at timestamptz NOT NULL,
            -- One receipt per (notification, platform, token) within a partition;
            -- across partitions, `append` checks under the notification's row lock.
            PRIMARY KEY (notification_id, platform, token, expires_day)
        ) PARTITION BY RANGE (expires_day);
        CREATE INDEX receipts_app_log ON receipts (app_id, seq);
        CREATE INDEX receipts_notification_log ON receipts (notification_id, nseq);
        """,
    ),
    Migration(
        2,
        "topic index: an ordered (app, topic, bucket, platform, token) table for topic fan-outs",
        """
        CREATE TABLE token_topics (
            app_id text NOT NULL,
            topic text NOT NULL,
            bucket smallint NOT NULL,
            platform text NOT NULL,
            token text NOT NULL,
            PRIMARY KEY (app_id, topic, bucket, platform, token),
            FOREIGN KEY (app_id, bucket, platform, token) REFERENCES tokens ON DELETE CASCADE
        );
        CREATE INDEX token_topics_by_token ON token_topics (app_id, bucket, platform, token);
        INSERT INTO token_topics (app_id, topic, bucket, platform, token)
            SELECT app_id, unnest(topics), bucket, platform, token FROM tokens
            ON CONFLICT DO NOTHING;
        """,
    ),
    Migration(
        3,
        "register_token(): one registration in one call, with plans the server keeps",
        """
        -- A registration as one function call. Its statements take scalar
        -- arguments, so the plans the function keeps (plan_cache_mode auto,
        -- whatever the session says) are index probes at any table size, and
        -- a call is neither planned anew nor a CTE of five parts: measured,
        -- the server's CPU per RegisterToken fell by about two thirds.
        -- The same steps, in the same order, as the batch statement in tokens.py.
        CREATE FUNCTION register_token(
            p_app text, p_bucket smallint, p_platform text, p_token text, p_user text, p_device text,
            p_locale text, p_timezone text, p_version text, p_environment text, p_topics text[], p_now timestamptz,
            OUT o_created boolean, OUT o_created_at timestamptz)
        LANGUAGE plpgsql SET plan_cache_mode = auto AS $fn$
        DECLARE
            old_topics text[];
        BEGIN
            IF p_device <> '' THEN
                -- The token the device held before, unless it is this one.
                DELETE FROM tokens t
                WHERE t.app_id = p_app AND t.platform = p_platform AND t.device_id = p_device AND t.device_id <> ''
                  AND NOT (t.bucket = p_bucket AND t.token = p_token);
            END IF;
            SELECT t.topics INTO old_topics FROM tokens t
            WHERE t.app_id = p_app AND t.bucket = p_bucket AND t.platform = p_platform AND t.token = p_token;
            INSERT INTO tokens AS t (app_id, bucket, platform, token, user_id, topics, device_id, locale, timezone,
                                     app_version, apns_environment, created_at, last_seen_at)
            VALUES (p_app, p_bucket, p_platform, p_token, p_user, p_topics, p_device, p_locale, p_timezone,
                    p_version, p_environment, p_now, p_now)
            ON CONFLICT (app_id, bucket, platform, token) DO UPDATE SET
                user_id = EXCLUDED.user_id, topics = EXCLUDED.topics, device_id = EXCLUDED.device_id,
                locale = EXCLUDED.locale, timezone = EXCLUDED.timezone, app_version = EXCLUDED.app_version,
                apns_environment = EXCLUDED.apns_environment, last_seen_at = EXCLUDED.last_seen_at
            RETURNING (t.xmax = 0), t.created_at INTO o_created, o_created_at;
            IF coalesce(old_topics, '{}') IS DISTINCT FROM p_topics THEN
                DELETE FROM token_topics tt
                WHERE tt.app_id = p_app AND tt.bucket = p_bucket AND tt.platform = p_platform AND tt.token = p_token
                  AND NOT tt.topic = ANY(p_topics);
                INSERT INTO token_topics (app_id, topic, bucket, platform, token)
                SELECT p_app, x.topic, p_bucket, p_platform, p_token FROM unnest(p_topics) AS x(topic)
                ON CONFLICT DO NOTHING;
            END IF;
        END
        $fn$;
        """,
    ),
    Migration(
        4,
        "webhook_cursors: how far each receipt webhook endpoint has got, and who sends to it",
        """
        CREATE TABLE webhook_cursors (
            app_id text NOT NULL,
            endpoint text NOT NULL,
            -- Every receipt of the app numbered up to seq was acknowledged by the endpoint.
            seq bigint NOT NULL,
            batch_end bigint NOT NULL DEFAULT 0,
            failures integer NOT NULL DEFAULT 0,
            failing_since timestamptz,
            retry_at timestamptz,
            owner text NOT NULL DEFAULT '',
            lease_expires_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, endpoint)
        );
        """,
    ),
    Migration(
        5,
        "cancellation, the notification listing and localized variants: a cancelled counter, the cancel time, "
        "the variants' rendered bodies, (app, created_at) indexes",
        """
        -- Adding a column with a constant default rewrites nothing (PostgreSQL 11 and later).
        ALTER TABLE notifications
            ADD COLUMN cancelled bigint NOT NULL DEFAULT 0,
            ADD COLUMN cancel_requested_at timestamptz,
            -- Localized variants: tag -> platform -> rendered body (json, as `rendered`, for the same reason).
            ADD COLUMN localized json NOT NULL DEFAULT '{}';
        -- ListNotifications: an app's notifications newest first, all of them or those in one state.
        CREATE INDEX notifications_by_created ON notifications (app_id, created_at DESC, notification_id DESC);
        CREATE INDEX notifications_by_state_created
            ON notifications (app_id, state, created_at DESC, notification_id DESC);
        """,
    ),
    Migration(
        6,
        "the traceparent of the Send that queued a notification, which the fan-out's spans link to",
        """
        -- A constant default: no rewrite. '' for notifications queued untraced (and before this migration).
        ALTER TABLE notifications ADD COLUMN traceparent text NOT NULL DEFAULT '';
        """,
    ),
    Migration(
        7,
        "claim lanes: a partition's lane (express or bulk), and an index for the express claim",
        """
        -- Existing partitions are bulk: nothing before this migration was sent in the express lane.
        ALTER TABLE partitions ADD COLUMN lane text NOT NULL DEFAULT 'bulk';
        -- The express claim walks only runnable express partitions, however many
        -- bulk ones a campaign has queued; the bulk claim keeps partitions_claimable.
        CREATE INDEX partitions_express ON partitions (lease_expires_at) WHERE NOT done AND lane = 'express';
        """,
    ),
    Migration(
        8,
        "delivery at local time: a partition's zones and planned targets, and tokens by (app, zone)",
        """
        -- NULL: every zone (all partitions before this migration, and every send not at local time).
        ALTER TABLE partitions
            ADD COLUMN timezones text[],
            ADD COLUMN targets bigint NOT NULL DEFAULT 0;
        -- A local-time Send counts an app's tokens per zone from this index alone, and each
        -- due group's partitions read only their zones' tokens, in the scan's key order per zone.
        CREATE INDEX tokens_by_timezone ON tokens (app_id, timezone, bucket, platform, token);
        """,
    ),
    Migration(
        9,
        "throttled fan-out: a notification's rate, and the next free instant of its shared send budget",
        """
        -- Constant defaults: no rewrite. 0 is unthrottled, as every notification before this migration.
        ALTER TABLE notifications
            ADD COLUMN max_per_second integer NOT NULL DEFAULT 0,
            -- NotificationStore.reserve books sends from here; NULL until the first booking.
            ADD COLUMN throttle_next_at timestamptz;
        """,
    ),
)
"""In order; a migration, once released, is never edited: a change is a new one."""

LATEST = MIGRATIONS[-1].version

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: Any, schema: str, *, target: int = LATEST) -> list[int]:
    """Applies the migrations above the applied version, up to `target`; returns the versions applied.

    `conn` is an asyncpg connection. Each migration commits on its own, so a
    failure leaves the versions before it applied and recorded.
    """
    applied: list[int] = []
    # Looked up first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE
    # privilege on the database, which a managed service's application role
    # may lack when an administrator made the schema for it.
    if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    for migration in MIGRATIONS:
        if migration.version > target:
            break
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(_BOOKKEEPING)
            done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version)
            if done:
                continue
            await conn.execute(migration.sql, timeout=LONG_STATEMENT_S)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
            )
            applied.append(migration.version)
            log.info("schema %s: applied migration %d (%s)", schema, migration.version, migration.name)
    return applied


async def current_version(conn: Any) -> int:
    """The highest applied migration (0 on an empty schema)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- receipt partitions

_EPOCH = date(1970, 1, 1)


def day_of(at: datetime) -> int:
    """The receipt partition (days since 1970-01-01, UTC) that holds a receipt expiring at `at`."""
    return (at.astimezone(UTC).date() - _EPOCH).days


def day_start(day: int) -> datetime:
    """The first instant of a partition's day."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)


def receipt_partition(day: int) -> str:
    """The name of one day's receipt partition."""
    return f"receipts_d{day}"


def create_receipt_partition_sql(day: int) -> str:
    """DDL for one day's partition (idempotent)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {receipt_partition(day)} PARTITION OF receipts "
        f"FOR VALUES FROM ({day}) TO ({day + 1})"
    )


LIST_RECEIPT_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.oid = 'receipts'::regclass
"""


def partition_day(relname: str) -> int | None:
    """The day of a partition name made by `receipt_partition`, else None."""
    prefix = "receipts_d"
    if relname.startswith(prefix) and relname[len(prefix):].lstrip("-").isdigit():
        return int(relname[len(prefix):])
    return None
