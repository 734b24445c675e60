-- 001: volumes. One row per volume; state walks creating -> ready ->
-- deleting, so a crash between catalog and file leaves a row that start-up
-- reconciliation knows how to finish or undo.
CREATE TABLE volumes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    uuid        TEXT    NOT NULL UNIQUE,
    format      TEXT    NOT NULL,
    backend     TEXT    NOT NULL DEFAULT 'file',
    location    TEXT    NOT NULL,
    base_id     INTEGER REFERENCES volumes(id) ON DELETE RESTRICT,
    size        INTEGER NOT NULL CHECK (size > 0),
    state       TEXT    NOT NULL
                CHECK (state IN ('creating', 'ready', 'deleting', 'missing')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
