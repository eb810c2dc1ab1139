-- A partition whose batch went to the dead-letter queue after its retries: its manifest says
-- why it is incomplete (NULL: complete).
ALTER TABLE partition_manifests ADD COLUMN incomplete TEXT;
