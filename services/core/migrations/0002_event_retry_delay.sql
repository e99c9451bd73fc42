-- photo.thumbnail_retrying says when the next attempt is due; the attempt number itself is in
-- the event's photo snapshot (thumbnail_attempts).
ALTER TABLE events ADD COLUMN retry_delay_ms integer NOT NULL DEFAULT 0;
