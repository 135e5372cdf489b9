-- One database per service (each owns its tables, outbox and migrations history).
-- Runs once, when the PostgreSQL volume is initialised.
CREATE DATABASE tracseq_templates OWNER tracseq;
CREATE DATABASE tracseq_events OWNER tracseq;
