-- Metadata ops are numbered by the run's position among its durable calls times a million, plus
-- their count there (conveyor/sdk/metadata.py): past 32 bits after a few thousand calls.
ALTER TABLE runs ALTER COLUMN metadata_seq TYPE BIGINT;
