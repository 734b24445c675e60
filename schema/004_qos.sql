-- 004: QoS limits. A volume's own limits and the group whose budget it
-- shares live beside its row (no row = no limits); groups are named
-- budgets of their own. NULL = no limit of that kind. A group cannot be
-- dropped while a volume names it.
CREATE TABLE qos_groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    iops          INTEGER CHECK (iops > 0),
    read_iops     INTEGER CHECK (read_iops > 0),
    write_iops    INTEGER CHECK (write_iops > 0),
    bps           INTEGER CHECK (bps > 0),
    read_bps      INTEGER CHECK (read_bps > 0),
    write_bps     INTEGER CHECK (write_bps > 0),
    burst_seconds REAL    CHECK (burst_seconds > 0),
    created_at    INTEGER NOT NULL
);
CREATE TABLE volume_qos (
    volume_id     INTEGER PRIMARY KEY
                  REFERENCES volumes(id) ON DELETE CASCADE,
    iops          INTEGER CHECK (iops > 0),
    read_iops     INTEGER CHECK (read_iops > 0),
    write_iops    INTEGER CHECK (write_iops > 0),
    bps           INTEGER CHECK (bps > 0),
    read_bps      INTEGER CHECK (read_bps > 0),
    write_bps     INTEGER CHECK (write_bps > 0),
    burst_seconds REAL    CHECK (burst_seconds > 0),
    group_id      INTEGER REFERENCES qos_groups(id) ON DELETE RESTRICT
);
CREATE INDEX volume_qos_group ON volume_qos(group_id);
