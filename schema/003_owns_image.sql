-- 003: whether vdiskd made a volume's image. A remote image that was
-- attached (an RBD image someone else created) is only detached when its
-- volume is deleted, never removed unless the caller asks for it. Local
-- image files and earlier volumes are vdiskd's own.
ALTER TABLE volumes ADD COLUMN owns_image INTEGER NOT NULL DEFAULT 1
    CHECK (owns_image IN (0, 1));
-- Remote volumes before this migration are NBD exports: never vdiskd's.
UPDATE volumes SET owns_image = 0 WHERE backend <> 'file';
