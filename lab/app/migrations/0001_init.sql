-- Clinic schema, version 1: patients, appointments and the clinic's own audit log.
CREATE TABLE patients (
    id          bigserial PRIMARY KEY,
    clinic_id   text        NOT NULL,
    full_name   text        NOT NULL,
    birth_date  date        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE appointments (
    id          bigserial PRIMARY KEY,
    patient_id  bigint      NOT NULL REFERENCES patients (id),
    starts_at   timestamptz NOT NULL,
    reason      text        NOT NULL,
    status      text        NOT NULL DEFAULT 'booked'
);
CREATE INDEX appointments_starts_at ON appointments (starts_at);
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    detail  text
);
