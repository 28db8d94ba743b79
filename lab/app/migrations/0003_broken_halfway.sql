-- Broken on purpose (fixture "broken-migration"): the first statement succeeds,
-- the second fails, so the whole migration run must roll back.
ALTER TABLE appointments ADD COLUMN room text;
ALTER TABLE appointments ADD CONSTRAINT appointments_room_fk FOREIGN KEY (room) REFERENCES rooms (code);
