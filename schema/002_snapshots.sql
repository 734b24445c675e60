-- 002: snapshots. The image's own snapshot table is what a snapshot is;
-- these rows record them for the catalog and are reconciled with the image
-- whenever the volume is opened (snapshots made by other tools appear,
-- rows whose snapshot is gone are dropped).
CREATE TABLE snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    volume_id   INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (volume_id, name)
);
CREATE INDEX snapshots_by_volume ON snapshots(volume_id);
