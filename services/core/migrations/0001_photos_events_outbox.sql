-- Photos are the source of truth for thumbnail state; events are the per-workspace log that
-- resume (after_event_id, Last-Event-ID) replays; the outbox holds broker messages until the
-- broker has confirmed them.

CREATE TABLE photos (
    id                 uuid PRIMARY KEY,
    workspace_id       text NOT NULL,
    item_id            text NOT NULL,
    filename           text NOT NULL,
    content_type       text NOT NULL,
    caption            text NOT NULL DEFAULT '',
    size_bytes         bigint NOT NULL,
    width              integer NOT NULL,
    height             integer NOT NULL,
    idempotency_key    text,
    thumbnail_status   text NOT NULL DEFAULT 'pending'
        CHECK (thumbnail_status IN ('pending', 'processing', 'complete', 'failed')),
    thumbnail_attempts integer NOT NULL DEFAULT 0,
    thumbnail_error    text NOT NULL DEFAULT '',
    thumbnails         jsonb NOT NULL DEFAULT '[]',
    placeholder        text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (workspace_id, idempotency_key)
);

CREATE INDEX photos_by_workspace ON photos (workspace_id, created_at, id);
CREATE INDEX photos_by_item ON photos (workspace_id, item_id, created_at, id);
CREATE INDEX photos_unfinished ON photos (updated_at)
    WHERE thumbnail_status IN ('pending', 'processing');

CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    type         text NOT NULL,
    photo_id     uuid NOT NULL,
    item_id      text NOT NULL,
    photo        jsonb,
    error        text NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX events_by_workspace ON events (workspace_id, id);

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    -- 'jobs' or 'events': the exchange without its namespace, so a row means the same thing
    -- to every stack that shares the database's schema.
    exchange    text NOT NULL CHECK (exchange IN ('jobs', 'events')),
    routing_key text NOT NULL,
    body        bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
