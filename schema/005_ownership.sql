-- 005: each volume's file has its own owner and permission bits, set at
-- create, by chown/chmod on the mount or by PATCH. NULL (volumes made
-- before this migration) means the daemon's --owner and --file-mode.
ALTER TABLE volumes ADD COLUMN uid INTEGER CHECK (uid BETWEEN 0 AND 4294967294);
ALTER TABLE volumes ADD COLUMN gid INTEGER CHECK (gid BETWEEN 0 AND 4294967294);
ALTER TABLE volumes ADD COLUMN mode INTEGER CHECK (mode BETWEEN 0 AND 511);
