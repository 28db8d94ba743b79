-- Version 2: patients get an e-mail address (nullable, so version 1 keeps working).
ALTER TABLE patients ADD COLUMN email text;
CREATE INDEX patients_email ON patients (email);
