-- API: a webhook delivery keeps its body's size and SHA-256 and, in `body`,
-- only its first 1 KB (a refused delivery is anybody's bytes: never stored
-- whole). Rows from before get their size; their hash is unknown (empty).
ALTER TABLE webhook_deliveries ADD COLUMN body_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN body_sha256 TEXT NOT NULL DEFAULT '';
-- Rows from before: their size, and their body cut to 1 KB (of characters).
UPDATE webhook_deliveries
   SET body_size = length(CAST(body AS BLOB)), body = substr(body, 1, 1024);
