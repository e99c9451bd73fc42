-- Event rows older than THUMBWIRE_EVENT_RETENTION_S are pruned. Each workspace's horizon is
-- the last id pruned from its log: a resume point below it has lost history, and gets a
-- stream.reset before the rest.
CREATE TABLE event_horizons (
    workspace_id      text PRIMARY KEY,
    pruned_through_id bigint NOT NULL
);
